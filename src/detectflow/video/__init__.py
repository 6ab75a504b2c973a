"""Video jobs: container sniffing, probing, frame sampling, segments, tracks and the annotated WebM."""
