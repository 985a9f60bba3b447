"""Recurring schedules: weekly slots in a time zone (`slots`) and the queue of posts filling them (`service`)."""
