"""Tools: applying trained networks as a user does — stylize photos in batches (:mod:`stylize`)
and export a network to ONNX (:mod:`export`). Built on the method's model files and the runtime's
fast inference path; the command line calls them.
"""
