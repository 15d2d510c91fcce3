"""ProtoBeam: few-shot transmit-beam inference (prototypical network)."""
