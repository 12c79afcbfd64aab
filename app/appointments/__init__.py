"""Appointments (预约): slots from the halls' opening hours, bookings, the day's queue, reminders and no-shows."""
