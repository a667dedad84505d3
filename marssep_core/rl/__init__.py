"""MARS RL fine-tuning: the Beta mask policy, the clipped trust-region objective, rewards."""
