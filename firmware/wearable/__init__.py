"""Neckline wearable firmware (MicroPython)."""
