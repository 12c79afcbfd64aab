"""Complaints (找茬吐槽, 12345): routed to the hall, replies to the complainant's inbox, the 12345 adapter."""
