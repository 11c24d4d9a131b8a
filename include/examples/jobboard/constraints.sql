-- jobboard: foreign keys and secondary indexes, added after the data is loaded.
-- Adding a foreign key to a filled table validates it with one join instead of one trigger call per row.

ALTER TABLE user_skills
    ADD CONSTRAINT user_skills_user_id_fkey  FOREIGN KEY (user_id)  REFERENCES users (id) ON DELETE CASCADE,
    ADD CONSTRAINT user_skills_skill_id_fkey FOREIGN KEY (skill_id) REFERENCES skills (id);

ALTER TABLE job_categories
    ADD CONSTRAINT job_categories_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES job_categories (id);

ALTER TABLE jobs
    ADD CONSTRAINT jobs_company_id_fkey  FOREIGN KEY (company_id)  REFERENCES companies (id),
    ADD CONSTRAINT jobs_category_id_fkey FOREIGN KEY (category_id) REFERENCES job_categories (id);

ALTER TABLE job_skills
    ADD CONSTRAINT job_skills_job_id_fkey   FOREIGN KEY (job_id)   REFERENCES jobs (id) ON DELETE CASCADE,
    ADD CONSTRAINT job_skills_skill_id_fkey FOREIGN KEY (skill_id) REFERENCES skills (id);

ALTER TABLE applications
    ADD CONSTRAINT applications_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id),
    ADD CONSTRAINT applications_job_id_fkey  FOREIGN KEY (job_id)  REFERENCES jobs (id);

ALTER TABLE application_attachments
    ADD CONSTRAINT application_attachments_application_id_fkey
        FOREIGN KEY (application_id) REFERENCES applications (id) ON DELETE CASCADE;

ALTER TABLE interviews
    ADD CONSTRAINT interviews_application_id_fkey
        FOREIGN KEY (application_id) REFERENCES applications (id) ON DELETE CASCADE;

ALTER TABLE search_history
    ADD CONSTRAINT search_history_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;

ALTER TABLE saved_searches
    ADD CONSTRAINT saved_searches_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;

ALTER TABLE notifications
    ADD CONSTRAINT notifications_user_id_fkey     FOREIGN KEY (user_id)     REFERENCES users (id) ON DELETE CASCADE,
    ADD CONSTRAINT notifications_template_id_fkey FOREIGN KEY (template_id) REFERENCES notification_templates (id);

ALTER TABLE notification_preferences
    ADD CONSTRAINT notification_preferences_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;

ALTER TABLE analytics_events
    ADD CONSTRAINT analytics_events_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL;

CREATE INDEX user_skills_skill_id_idx             ON user_skills (skill_id);
CREATE INDEX job_categories_parent_id_idx         ON job_categories (parent_id);
CREATE INDEX jobs_company_id_idx                  ON jobs (company_id);
CREATE INDEX jobs_category_id_idx                 ON jobs (category_id);
CREATE INDEX jobs_status_posted_at_idx            ON jobs (status, posted_at);
CREATE INDEX jobs_tags_idx                        ON jobs USING gin (tags);
CREATE INDEX job_skills_skill_id_idx              ON job_skills (skill_id);
CREATE INDEX applications_job_id_idx              ON applications (job_id);
CREATE INDEX application_attachments_app_id_idx   ON application_attachments (application_id);
CREATE INDEX interviews_application_id_idx        ON interviews (application_id);
CREATE INDEX search_history_user_id_idx           ON search_history (user_id, searched_at);
CREATE INDEX saved_searches_user_id_idx           ON saved_searches (user_id);
CREATE INDEX notifications_user_id_unread_idx     ON notifications (user_id) WHERE read_at IS NULL;
CREATE INDEX notifications_template_id_idx        ON notifications (template_id);
CREATE INDEX analytics_events_user_id_idx         ON analytics_events (user_id);
CREATE INDEX analytics_events_occurred_at_idx     ON analytics_events (occurred_at);
