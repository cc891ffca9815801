-- case_files' JSON columns are rewritten whenever a batch folds a case; with
-- PostgreSQL's default pglz compression that compression was half of the
-- database's work in a rebuild, and every case read paid the decompression.
-- EXTERNAL keeps them out of line but uncompressed (about twice the disk;
-- `file` now holds only the contacts started, view and timeline the rest).
-- Rows written before keep their compression until next rewritten.
ALTER TABLE case_files
    ALTER COLUMN file SET STORAGE EXTERNAL,
    ALTER COLUMN view SET STORAGE EXTERNAL,
    ALTER COLUMN timeline SET STORAGE EXTERNAL;
