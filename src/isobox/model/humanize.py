"""Durations in Docker's words, for `ps`'s Status and the API's documents alike (pure)."""

from __future__ import annotations


def human_duration(seconds: float) -> str:
    """A duration in Docker's words (go-units' HumanDuration): "Less than a second", "1 second", "45 seconds",
    "About a minute" (60 to 119 s), "5 minutes", "About an hour" (up to 1 h 29 min), "2 hours" … "47 hours",
    "2 days" … "13 days", "2 weeks" … "8 weeks", "2 months" … "24 months", "2 years". Counts truncate, except
    hours, which round; a unit never comes with 1 (no "1 minutes"). Years count the rounded hours, where
    go-units counts the truncated ones and says "1 years" in the half hour before two years."""
    whole_seconds = int(seconds)  # Go's int() of a float truncates toward zero, as Python's does
    if whole_seconds < 1:
        return "Less than a second"
    if whole_seconds == 1:
        return "1 second"
    if whole_seconds < 60:
        return f"{whole_seconds} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"
