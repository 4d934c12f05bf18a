"""Deadline-bounded HTTP requests and the watchdog that cuts a dripping answer."""
