"""Fault drills: kill a training run at random moments, resume it, compare with one never killed."""
