-- payments: foreign keys and secondary indexes, added after the data is loaded.
-- Most foreign keys cross schemas, i.e. services: after the split they are soft references
-- (derived from these constraints by the plan's whole-schema routing).

ALTER TABLE user_schema.addresses
    ADD CONSTRAINT addresses_user_id_fkey FOREIGN KEY (user_id) REFERENCES user_schema."user" (id) ON DELETE CASCADE;

ALTER TABLE wallet_schema.wallets
    ADD CONSTRAINT wallets_user_id_fkey  FOREIGN KEY (user_id)  REFERENCES user_schema."user" (id),
    ADD CONSTRAINT wallets_currency_fkey FOREIGN KEY (currency) REFERENCES wallet_schema.currencies (code);

ALTER TABLE payment_schema."Order"
    ADD CONSTRAINT "Order_user_id_fkey" FOREIGN KEY (user_id) REFERENCES user_schema."user" (id);

ALTER TABLE payment_schema.payments
    ADD CONSTRAINT payments_order_id_fkey  FOREIGN KEY (order_id)  REFERENCES payment_schema."Order" (id),
    ADD CONSTRAINT payments_user_id_fkey   FOREIGN KEY (user_id)   REFERENCES user_schema."user" (id),
    ADD CONSTRAINT payments_wallet_id_fkey FOREIGN KEY (wallet_id) REFERENCES wallet_schema.wallets (id),
    ADD CONSTRAINT payments_currency_fkey  FOREIGN KEY (currency)  REFERENCES wallet_schema.currencies (code);

ALTER TABLE payment_schema.refunds
    ADD CONSTRAINT refunds_payment_id_fkey FOREIGN KEY (payment_id) REFERENCES payment_schema.payments (id);

ALTER TABLE ledger_schema.accounts
    ADD CONSTRAINT accounts_currency_fkey FOREIGN KEY (currency) REFERENCES wallet_schema.currencies (code);

ALTER TABLE ledger_schema.transactions
    ADD CONSTRAINT transactions_payment_id_fkey FOREIGN KEY (payment_id) REFERENCES payment_schema.payments (id);

ALTER TABLE ledger_schema.entries
    ADD CONSTRAINT entries_transaction_id_fkey FOREIGN KEY (transaction_id) REFERENCES ledger_schema.transactions (id),
    ADD CONSTRAINT entries_account_id_fkey     FOREIGN KEY (account_id)     REFERENCES ledger_schema.accounts (id);

ALTER TABLE compliance_schema.kyc_checks
    ADD CONSTRAINT kyc_checks_user_id_fkey FOREIGN KEY (user_id) REFERENCES user_schema."user" (id);

ALTER TABLE compliance_schema.aml_alerts
    ADD CONSTRAINT aml_alerts_payment_id_fkey FOREIGN KEY (payment_id) REFERENCES payment_schema.payments (id);

ALTER TABLE analytics_schema.events
    ADD CONSTRAINT events_user_id_fkey FOREIGN KEY (user_id) REFERENCES user_schema."user" (id) ON DELETE SET NULL;

ALTER TABLE security_schema.api_keys
    ADD CONSTRAINT api_keys_user_id_fkey FOREIGN KEY (user_id) REFERENCES user_schema."user" (id) ON DELETE CASCADE;

ALTER TABLE security_schema.login_attempts
    ADD CONSTRAINT login_attempts_user_id_fkey FOREIGN KEY (user_id) REFERENCES user_schema."user" (id) ON DELETE SET NULL;

ALTER TABLE notification_schema.notifications
    ADD CONSTRAINT notifications_user_id_fkey FOREIGN KEY (user_id) REFERENCES user_schema."user" (id) ON DELETE CASCADE;

CREATE INDEX addresses_user_id_idx             ON user_schema.addresses (user_id);
CREATE UNIQUE INDEX addresses_one_primary_idx  ON user_schema.addresses (user_id) WHERE is_primary;
CREATE INDEX user_lower_email_idx              ON user_schema."user" (lower(email));
CREATE INDEX wallets_currency_idx              ON wallet_schema.wallets (currency);
CREATE INDEX "Order_user_id_placed_at_idx"     ON payment_schema."Order" (user_id, placed_at);
CREATE INDEX payments_order_id_idx             ON payment_schema.payments (order_id);
CREATE INDEX payments_user_id_idx              ON payment_schema.payments (user_id, created_at);
CREATE INDEX payments_wallet_id_idx            ON payment_schema.payments (wallet_id) WHERE wallet_id IS NOT NULL;
CREATE INDEX payments_status_idx               ON payment_schema.payments (status) WHERE status IN ('pending', 'authorized');
CREATE INDEX refunds_payment_id_idx            ON payment_schema.refunds (payment_id);
CREATE INDEX accounts_currency_idx             ON ledger_schema.accounts (currency);
CREATE INDEX transactions_payment_id_idx       ON ledger_schema.transactions (payment_id);
CREATE INDEX transactions_posted_at_idx        ON ledger_schema.transactions (posted_at);
CREATE INDEX entries_transaction_id_idx        ON ledger_schema.entries (transaction_id);
CREATE INDEX entries_account_id_idx            ON ledger_schema.entries (account_id, created_at);
CREATE INDEX kyc_checks_user_id_idx            ON compliance_schema.kyc_checks (user_id);
CREATE INDEX aml_alerts_payment_id_idx         ON compliance_schema.aml_alerts (payment_id);
CREATE INDEX aml_alerts_open_idx               ON compliance_schema.aml_alerts (severity) WHERE status IN ('open', 'investigating');
CREATE INDEX events_user_id_idx                ON analytics_schema.events (user_id);
CREATE INDEX events_occurred_at_idx            ON analytics_schema.events (occurred_at);
CREATE INDEX api_keys_user_id_idx              ON security_schema.api_keys (user_id);
CREATE INDEX login_attempts_user_id_idx        ON security_schema.login_attempts (user_id, attempted_at);
CREATE INDEX login_attempts_ip_idx             ON security_schema.login_attempts (ip);
CREATE INDEX notifications_user_id_idx         ON notification_schema.notifications (user_id);
