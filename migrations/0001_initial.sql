-- Meridian's versioned config store.
-- One row holds the global revision counter; every writer locks it, so revisions commit in
-- order (a reader that saw revision N never later finds a committed N-1).
CREATE TABLE meridian_state (
  id                 boolean PRIMARY KEY DEFAULT true CHECK (id),
  revision           bigint NOT NULL DEFAULT 0,
  compacted_revision bigint NOT NULL DEFAULT 0
);
INSERT INTO meridian_state DEFAULT VALUES;

-- Current state: one row per live resource. `body` is the serialized meridian.v1.Resource
-- (metadata included); labels are copied out for selector queries.
CREATE TABLE resources (
  kind            text   NOT NULL,
  environment     text   NOT NULL,
  name            text   NOT NULL,
  version         bigint NOT NULL,
  create_revision bigint NOT NULL,
  mod_revision    bigint NOT NULL,
  labels          jsonb  NOT NULL DEFAULT '{}',
  refs            text[] NOT NULL DEFAULT '{}',  -- services a route sends traffic to
  body            bytea  NOT NULL,
  PRIMARY KEY (environment, kind, name)
);
CREATE INDEX resources_labels ON resources USING gin (labels);
CREATE INDEX resources_refs ON resources USING gin (refs);

-- One row per revision: the audit header.
CREATE TABLE revisions (
  revision    bigint PRIMARY KEY,
  created_at  timestamptz NOT NULL DEFAULT now(),
  actor       text NOT NULL,
  comment     text NOT NULL DEFAULT '',
  rollback_to bigint NOT NULL DEFAULT 0
);

-- The change log: audit history and the outbox distribution reads. before/after are whole
-- serialized resources (NULL on create / delete).
CREATE TABLE changes (
  revision    bigint   NOT NULL REFERENCES revisions (revision) ON DELETE CASCADE,
  seq         integer  NOT NULL,
  kind        text     NOT NULL,
  environment text     NOT NULL,
  name        text     NOT NULL,
  operation   smallint NOT NULL,  -- meridian.v1.Operation: 1 PUT, 2 DELETE
  before      bytea,
  after       bytea,
  PRIMARY KEY (revision, seq)
);
CREATE INDEX changes_by_key ON changes (environment, kind, name, revision);
