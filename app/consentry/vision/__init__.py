"""Frame → faces: detect, landmark, align, embed. Knows nothing about who is enrolled."""
