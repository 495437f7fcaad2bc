"""Training: the shared loop, the runtime (device, torchrun), loaders, one trainer per objective."""
