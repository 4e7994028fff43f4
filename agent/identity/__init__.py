"""Who a person track is: which face belongs to which person box, and votes over a track's faces.

Pure: boxes and classifier predictions in, bindings and identity changes out; no I/O, no clock.
"""
