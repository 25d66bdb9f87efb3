-- The newest revision whose responses a node has all answered (ACKed or NACKed). A node that
-- rejected a revision stays below it in applied_revision until a later revision fixes what it
-- rejected; answered_revision tells "it has seen revision N and still rejects" (nacked for N)
-- from "revision N has not reached it yet" (pending). A constant default: no table rewrite.
ALTER TABLE nodes ADD COLUMN answered_revision bigint NOT NULL DEFAULT 0;
