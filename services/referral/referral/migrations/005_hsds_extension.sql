-- What an imported Open Referral HSDS dataset holds that the directory has no place for, kept so that
-- exporting gives it back (directory/hsds.py, new_extension): null for entries never imported.
ALTER TABLE organizations ADD COLUMN hsds jsonb;
ALTER TABLE locations ADD COLUMN hsds jsonb;
ALTER TABLE services ADD COLUMN hsds jsonb;

-- A dataset's rows that belong to no entry (taxonomies and their terms, rows pointing at nothing held).
CREATE TABLE hsds_shared (
    table_name text  NOT NULL,
    id         text  NOT NULL,
    data       jsonb NOT NULL,
    PRIMARY KEY (table_name, id)
);
