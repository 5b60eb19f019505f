"""How much GPU memory a fine-tuning run needs, before any GPU is rented.

inventory      what a model is made of (tensor names and shapes, dimensions), without its weights
architectures  the tensors of the decoder families tunebench can count from config.json alone
settings       the Axolotl settings that matter for memory, resolved into a TrainingSetup
optimizers     optimizer state per parameter
model          the memory model: bytes per component, per GPU under a sharding plan
advice         what would fit instead (fewer GPUs, more GPUs, a cheaper method)
table          the estimate as a table a person reads at a glance
calibration    published GPU memory measurements beside the estimate of the same setup
"""
