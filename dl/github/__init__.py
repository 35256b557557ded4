"""GitHub at the edge: the event, the REST client, the sticky comment, the job summary and outputs, and the review loop."""
