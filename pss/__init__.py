"""The PSS domain: what the World Taekwondo scoring feed says, shared by every plugin.

Pure data and rules, no I/O, no plugin: ``protocol`` (the message vocabulary, the event models
and the parser), ``sides`` (athlete number 1 -> blue, 2 -> red), ``describe`` (a human line per
event, as a table), ``ingested`` (an event with where and when its datagram arrived), ``session``
(a UDP server session), ``match`` (the one match-state model and the rule for when a match
starts and ends). Both built-in plugins import it; it imports neither of them.
"""
