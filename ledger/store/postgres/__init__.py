"""What the store does on PostgreSQL alone to spend fewer round trips and less CPU per call:
queued writes riding with the next statement (write_behind), BEGIN and COMMIT without round
trips of their own (transaction_blocks), an operation's reads in one statement (prefetch),
server-side prepared statements (prepared), COPY and streamed reads for the system jobs
(bulk_copy, streaming), and the expiry job's batches written by the database itself
(expiry_writes). On SQLite none of it is installed and the same store functions run plainly."""
