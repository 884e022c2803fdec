"""Invoice import: read a file (CSV dialects, XLSX) or API rows, normalise and validate them
row by row, then write customers, invoices and payment requests in one transaction
(set-based through a COPY staging table on PostgreSQL, through the services elsewhere)."""
