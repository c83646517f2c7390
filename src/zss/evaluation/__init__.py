"""Evaluation: the dataset-level confusion matrices and their three readings (metrics.py), the
threshold sweep and AUSUC, the evaluator of every variant (one TestResult per test), the
gates' tuning objective, the run's result files, tables, the reading and the plots."""
