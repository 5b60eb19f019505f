"""What the train, merge-lora and upload steps share.

The final Axolotl config, checkpoint discovery, the launcher, and model folder checks.
"""
