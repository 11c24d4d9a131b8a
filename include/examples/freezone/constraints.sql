-- freezone: foreign keys and secondary indexes, added after the data is loaded.
-- References that cross services after the split (marked "cross") become UUID soft references in plan.yaml.
-- companies.shareholders holds user ids inside jsonb: a reference no foreign key (and no plan) can see.

ALTER TABLE users
    ADD CONSTRAINT users_role_granted_by_fkey FOREIGN KEY (role_granted_by) REFERENCES users (id);

ALTER TABLE license_types
    ADD CONSTRAINT license_types_freezone_id_fkey FOREIGN KEY (freezone_id) REFERENCES freezones (id);

ALTER TABLE companies
    ADD CONSTRAINT companies_owner_id_fkey        FOREIGN KEY (owner_id)        REFERENCES users (id),     -- cross
    ADD CONSTRAINT companies_freezone_id_fkey     FOREIGN KEY (freezone_id)     REFERENCES freezones (id),
    ADD CONSTRAINT companies_license_type_id_fkey FOREIGN KEY (license_type_id) REFERENCES license_types (id);

ALTER TABLE setup_applications
    ADD CONSTRAINT setup_applications_company_id_fkey   FOREIGN KEY (company_id)   REFERENCES companies (id) ON DELETE CASCADE,
    ADD CONSTRAINT setup_applications_applicant_id_fkey FOREIGN KEY (applicant_id) REFERENCES users (id);  -- cross

ALTER TABLE documents
    ADD CONSTRAINT documents_user_id_fkey    FOREIGN KEY (user_id)    REFERENCES users (id),                      -- cross
    ADD CONSTRAINT documents_company_id_fkey FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE SET NULL; -- cross

ALTER TABLE document_reviews
    ADD CONSTRAINT document_reviews_document_id_fkey FOREIGN KEY (document_id) REFERENCES documents (id) ON DELETE CASCADE,
    ADD CONSTRAINT document_reviews_reviewer_id_fkey FOREIGN KEY (reviewer_id) REFERENCES users (id);   -- cross

ALTER TABLE research_queries
    ADD CONSTRAINT research_queries_user_id_fkey     FOREIGN KEY (user_id)     REFERENCES users (id) ON DELETE CASCADE, -- cross
    ADD CONSTRAINT research_queries_freezone_id_fkey FOREIGN KEY (freezone_id) REFERENCES freezones (id);            -- cross

ALTER TABLE research_answers
    ADD CONSTRAINT research_answers_query_id_fkey FOREIGN KEY (query_id) REFERENCES research_queries (id) ON DELETE CASCADE;

ALTER TABLE scrape_sources
    ADD CONSTRAINT scrape_sources_freezone_id_fkey FOREIGN KEY (freezone_id) REFERENCES freezones (id);  -- cross

ALTER TABLE scraped_pages
    ADD CONSTRAINT scraped_pages_source_id_fkey FOREIGN KEY (source_id) REFERENCES scrape_sources (id) ON DELETE CASCADE;

CREATE INDEX users_status_idx                    ON users (status) WHERE deleted_at IS NULL;
CREATE INDEX users_national_id_idx               ON users (national_id);
CREATE INDEX license_types_freezone_id_idx       ON license_types (freezone_id);
CREATE INDEX companies_owner_id_idx              ON companies (owner_id);
CREATE INDEX companies_freezone_id_idx           ON companies (freezone_id);
CREATE INDEX companies_license_type_id_idx       ON companies (license_type_id);
CREATE INDEX companies_activities_idx            ON companies USING gin (activities);
CREATE INDEX setup_applications_company_id_idx   ON setup_applications (company_id);
CREATE INDEX setup_applications_applicant_id_idx ON setup_applications (applicant_id);
CREATE INDEX documents_user_id_idx               ON documents (user_id);
CREATE INDEX documents_company_id_idx            ON documents (company_id);
CREATE INDEX documents_expires_on_idx            ON documents (expires_on) WHERE status = 'verified';
CREATE INDEX document_reviews_document_id_idx    ON document_reviews (document_id);
CREATE INDEX document_reviews_reviewer_id_idx    ON document_reviews (reviewer_id);
CREATE INDEX research_queries_user_id_idx        ON research_queries (user_id, created_at);
CREATE INDEX research_queries_freezone_id_idx    ON research_queries (freezone_id);
CREATE INDEX research_answers_query_id_idx       ON research_answers (query_id);
CREATE INDEX scrape_sources_freezone_id_idx      ON scrape_sources (freezone_id);
CREATE INDEX scraped_pages_source_id_idx         ON scraped_pages (source_id, fetched_at);
