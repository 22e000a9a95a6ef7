"""How fast training and generation run, and what they cost in memory and threads."""
