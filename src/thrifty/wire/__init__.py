"""Wire formats the faces speak that the pipeline does not: each module turns its API's requests
into a call the pipeline runs and the pipeline's answers back into its API's responses and streams.
"""
