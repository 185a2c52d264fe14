"""LaSeR: reinforcement learning with last-token self-rewarding."""
