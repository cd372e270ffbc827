-- An alert raised again after a crash (a detection worker killed between raising an alert
-- from its outbox and deleting it there) is recognised by where it came from: the worker
-- names each outbox entry (`nats:<stream>:<outbox id>`), and a second raise of the same
-- origin finds the stored alert instead of storing a copy. In-process alerts have none.
ALTER TABLE alerts ADD COLUMN origin TEXT;
CREATE UNIQUE INDEX alerts_origin ON alerts (origin);
