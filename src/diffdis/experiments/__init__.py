"""Experiments: what trains models and then evaluates them (the demo, the comparison study). Above training and
evaluation; nothing below imports this package."""
