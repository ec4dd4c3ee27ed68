"""Source images fetched over HTTP: a master origin, then its fallbacks.

``settings`` declares where sources come from and the limits on fetching
them (``OriginSettings``); ``guard`` decides which addresses may be fetched
from, against server-side request forgery (``refused_address``); ``client``
fetches a source, master first, then every fallback at once
(``HttpOrigins``); ``exchange`` is one GET of one URL on a vetted
connection, under the deadlines and the byte cap.
"""
