"""Names of the arrays in a training batch, shared by the store, the sampler and every algorithm (no torch)."""

ACTION = "action"
ACTION_IS_PAD = "action_is_pad"  # (B, horizon) bool: the action step lies outside the episode
FUTURE_PREFIX = "future."  # "future.<key>": the key at a uniformly random later step of the same episode
NEXT_PREFIX = "next."  # "next.<key>": the key at the step after the window's current one
NEXT_IS_PAD = "next_is_pad"  # (B,) bool: the current step is the episode's last, so "next" repeats it
