"""NumPy analysis: reference attention, random features, spike decoding and noise bounds."""
