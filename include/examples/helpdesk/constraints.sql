-- helpdesk: foreign keys and secondary indexes, added after the data is loaded.
-- In the shared database every reference is a foreign key; after the split (plan.yaml) the ones that
-- cross services (marked "cross") become UUID soft references, the others stay foreign keys.

ALTER TABLE departments
    ADD CONSTRAINT departments_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES departments (id);

ALTER TABLE users
    ADD CONSTRAINT users_department_id_fkey FOREIGN KEY (department_id) REFERENCES departments (id) ON DELETE SET NULL;

ALTER TABLE tickets
    ADD CONSTRAINT tickets_requester_id_fkey    FOREIGN KEY (requester_id)    REFERENCES users (id),         -- cross
    ADD CONSTRAINT tickets_assignee_id_fkey     FOREIGN KEY (assignee_id)     REFERENCES users (id),         -- cross
    ADD CONSTRAINT tickets_department_id_fkey   FOREIGN KEY (department_id)   REFERENCES departments (id),   -- cross
    ADD CONSTRAINT tickets_sla_template_id_fkey FOREIGN KEY (sla_template_id) REFERENCES sla_templates (id);

ALTER TABLE sub_tickets
    ADD CONSTRAINT sub_tickets_ticket_id_fkey   FOREIGN KEY (ticket_id)   REFERENCES tickets (id) ON DELETE CASCADE,
    ADD CONSTRAINT sub_tickets_assignee_id_fkey FOREIGN KEY (assignee_id) REFERENCES users (id);              -- cross

ALTER TABLE approvals
    ADD CONSTRAINT approvals_ticket_id_fkey   FOREIGN KEY (ticket_id)   REFERENCES tickets (id) ON DELETE CASCADE,
    ADD CONSTRAINT approvals_approver_id_fkey FOREIGN KEY (approver_id) REFERENCES users (id);                -- cross

ALTER TABLE chat_messages
    ADD CONSTRAINT chat_messages_ticket_id_fkey FOREIGN KEY (ticket_id) REFERENCES tickets (id) ON DELETE CASCADE, -- cross
    ADD CONSTRAINT chat_messages_author_id_fkey FOREIGN KEY (author_id) REFERENCES users (id) ON DELETE SET NULL;  -- cross

ALTER TABLE notifications
    ADD CONSTRAINT notifications_user_id_fkey   FOREIGN KEY (user_id)   REFERENCES users (id) ON DELETE CASCADE,     -- cross
    ADD CONSTRAINT notifications_ticket_id_fkey FOREIGN KEY (ticket_id) REFERENCES tickets (id) ON DELETE SET NULL;  -- cross

ALTER TABLE ticket_participants
    ADD CONSTRAINT ticket_participants_ticket_id_fkey FOREIGN KEY (ticket_id) REFERENCES tickets (id) ON DELETE CASCADE, -- cross
    ADD CONSTRAINT ticket_participants_user_id_fkey   FOREIGN KEY (user_id)   REFERENCES users (id) ON DELETE CASCADE;   -- cross

ALTER TABLE attachments
    ADD CONSTRAINT attachments_ticket_id_fkey   FOREIGN KEY (ticket_id)   REFERENCES tickets (id) ON DELETE CASCADE,       -- cross
    ADD CONSTRAINT attachments_message_id_fkey  FOREIGN KEY (message_id)  REFERENCES chat_messages (id) ON DELETE SET NULL, -- cross
    ADD CONSTRAINT attachments_uploaded_by_fkey FOREIGN KEY (uploaded_by) REFERENCES users (id);                        -- cross

CREATE INDEX departments_parent_id_idx          ON departments (parent_id);
CREATE INDEX users_department_id_idx            ON users (department_id);
CREATE INDEX users_lower_email_idx              ON users (lower(email));
CREATE INDEX tickets_requester_id_idx           ON tickets (requester_id);
CREATE INDEX tickets_assignee_open_idx          ON tickets (assignee_id) WHERE status NOT IN ('solved', 'closed');
CREATE INDEX tickets_department_id_idx          ON tickets (department_id);
CREATE INDEX tickets_sla_template_id_idx        ON tickets (sla_template_id);
CREATE INDEX tickets_status_created_at_idx      ON tickets (status, created_at);
CREATE INDEX tickets_tags_idx                   ON tickets USING gin (tags);
CREATE INDEX sub_tickets_assignee_id_idx        ON sub_tickets (assignee_id);
CREATE INDEX approvals_ticket_id_idx            ON approvals (ticket_id);
CREATE INDEX approvals_pending_idx              ON approvals (approver_id) WHERE state = 'pending';
CREATE INDEX chat_messages_ticket_id_idx        ON chat_messages (ticket_id, created_at);
CREATE INDEX chat_messages_author_id_idx        ON chat_messages (author_id);
CREATE INDEX notifications_user_id_unread_idx   ON notifications (user_id) WHERE read_at IS NULL;
CREATE INDEX notifications_ticket_id_idx        ON notifications (ticket_id);
CREATE INDEX ticket_participants_user_id_idx    ON ticket_participants (user_id);
CREATE INDEX attachments_ticket_id_idx          ON attachments (ticket_id);
CREATE INDEX attachments_message_id_idx         ON attachments (message_id);
CREATE INDEX attachments_uploaded_by_idx        ON attachments (uploaded_by);
