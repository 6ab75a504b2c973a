"""Face galleries: tenant-scoped subjects and their enrolled face embeddings, and matching against them."""
