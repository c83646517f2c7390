"""LightningModules: stage 1 (FCN-S / FCN-JE) and stage 2 (seenmask)."""

from zss.stages.stage1 import Stage1Module
from zss.stages.stage2 import Stage2Module

__all__ = ["Stage1Module", "Stage2Module"]
