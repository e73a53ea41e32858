"""The network: the diffusers UNet (image branch), the text stream, and the frozen encoders around them."""
