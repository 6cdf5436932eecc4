"""Building blocks shared by the tasks: poolers and (later) CRF, attention, decoding."""
