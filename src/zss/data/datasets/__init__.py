"""The datasets: a list of ids, a folder of JPEGs and a label reader each (base.py); PASCAL VOC
(with SBD's converted labels), PASCAL-Context and the demo's generated benchmark."""
