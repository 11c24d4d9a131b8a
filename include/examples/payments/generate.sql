-- payments: deterministic data generator, run after schema.sql and before constraints.sql.
--
-- Row counts come from the custom settings dbsplit.<schema>.<table> in lower case, e.g.
-- dbsplit.payment_schema.order for payment_schema."Order" (set by dbsplit.samples from sizes.yaml).
-- Every value derives from the row number g: pg_temp.rows() pairs it with a mixed value b, and
-- pg_temp.h(b, k) draws stream k from b. Integer and numeric arithmetic only: no random(), now() or
-- hashtext(), so the same counts give the same bytes on every PostgreSQL version. Timestamps lie in
-- 2023-01-01 .. 2024-12-31 UTC (plus later updates); the session runs with TimeZone UTC.
--
-- Money: pg_temp.money(i, c) is an amount in currency number c (0..11 in pg_temp.ccy()), rounded to its
-- minor units. Wallet w of user u: w = u + users * k holds currency (u + k) mod 12, so wallet u is the
-- user's primary wallet, in currency u mod 12. Ledger transaction t has m legs (m = 2..4): leg 0 debits
-- the full amount, the others credit it in parts, so the legs of every transaction sum to zero.

-- ---------------------------------------------------------------- helpers (session-local)
-- pg_temp.rows, h, pick, pickj, at and secs: ../generate_helpers.sql, run just before this script

-- the currencies: ISO code, name, minor units, symbol, and a price scale (same order)
CREATE FUNCTION pg_temp.ccy() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'EUR', 'USD', 'GBP', 'CHF', 'SEK', 'JPY', 'BRL', 'AED', 'PLN', 'INR', 'NOK', 'KWD'] $$;

CREATE FUNCTION pg_temp.ccy_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Euro', 'US Dollar', 'Pound sterling', 'Schweizer Franken', 'Svensk krona', '日本円', 'Real brasileiro',
    'درهم إماراتي', 'Złoty polski', 'भारतीय रुपया', 'Norsk krone', 'دينار كويتي'] $$;

CREATE FUNCTION pg_temp.ccy_symbols() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    '€', '$', '£', 'CHF', 'kr', '¥', 'R$', 'د.إ', 'zł', '₹', 'kr', 'د.ك'] $$;

CREATE FUNCTION pg_temp.mu(c bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE c WHEN 5 THEN 0 WHEN 11 THEN 3 ELSE 2 END $$;

CREATE FUNCTION pg_temp.scale(c bigint) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (ARRAY[1, 1, 1, 1, 10, 100, 5, 4, 4, 80, 10, 0.3])[1 + c::integer]::numeric $$;

-- an amount of 1.00 .. 500.99 major units (scaled per currency), rounded to the currency's minor units
CREATE FUNCTION pg_temp.money(i bigint, c bigint) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT round((100 + i % 50000) / 100.0 * pg_temp.scale(c), pg_temp.mu(c)) $$;

CREATE FUNCTION pg_temp.first_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'José', 'Zoë', 'María', 'Jürgen', 'Anaïs', 'Søren', 'Łukasz', 'Chloé', 'Ömer', 'Ingrid',
    'Björn', 'Émilie', 'Nuño', 'Siobhán', 'Kenji', 'Priya', 'Ngozi', 'Tomás', 'Fatimah', 'Lucas'] $$;

CREATE FUNCTION pg_temp.first_slugs() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'jose', 'zoe', 'maria', 'juergen', 'anais', 'soeren', 'lukasz', 'chloe', 'oemer', 'ingrid',
    'bjoern', 'emilie', 'nuno', 'siobhan', 'kenji', 'priya', 'ngozi', 'tomas', 'fatimah', 'lucas'] $$;

CREATE FUNCTION pg_temp.last_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Núñez', 'Ångström', 'Müller', 'García', 'Kowalski', 'Ødegaard', 'Lefèvre', 'O''Brien',
    'Smith', 'Yılmaz', 'Schröder', 'Nguyễn', 'Novák', 'Silva', 'Patel', 'Okafor', 'Tanaka', 'Al-Sabah'] $$;

CREATE FUNCTION pg_temp.products() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Café molido 500 g', 'Kopfhörer „Studio“', 'T-shirt 👕 taille M', '抹茶セット', 'Gift card',
    'Smørbrød-kurs', 'Livro: Dom Casmurro', 'Yoga mat', 'Zegarek ⌚', 'Masala chai 250 g', 'USB-C cable 2 m'] $$;

-- ---------------------------------------------------------------- counts
CREATE TEMP TABLE n ON COMMIT DROP AS SELECT
    current_setting('dbsplit.user_schema.user')::bigint                    AS users,
    current_setting('dbsplit.user_schema.addresses')::bigint               AS addresses,
    current_setting('dbsplit.wallet_schema.currencies')::bigint            AS currencies,
    current_setting('dbsplit.wallet_schema.wallets')::bigint               AS wallets,
    current_setting('dbsplit.payment_schema.order')::bigint                AS orders,
    current_setting('dbsplit.payment_schema.payments')::bigint             AS payments,
    current_setting('dbsplit.payment_schema.refunds')::bigint              AS refunds,
    current_setting('dbsplit.ledger_schema.accounts')::bigint              AS accounts,
    current_setting('dbsplit.ledger_schema.transactions')::bigint          AS transactions,
    current_setting('dbsplit.ledger_schema.entries')::bigint               AS entries,
    current_setting('dbsplit.compliance_schema.kyc_checks')::bigint        AS kyc_checks,
    current_setting('dbsplit.compliance_schema.aml_alerts')::bigint        AS aml_alerts,
    current_setting('dbsplit.analytics_schema.daily_volumes')::bigint      AS daily_volumes,
    current_setting('dbsplit.analytics_schema.events')::bigint             AS events,
    current_setting('dbsplit.security_schema.api_keys')::bigint            AS api_keys,
    current_setting('dbsplit.security_schema.login_attempts')::bigint      AS login_attempts,
    current_setting('dbsplit.notification_schema.notifications')::bigint   AS notifications;
ANALYZE n;

DO $$
BEGIN
    IF EXISTS (SELECT FROM n WHERE currencies <> 12 OR wallets < users OR wallets > 12 * users OR accounts < 24
                                OR entries < 2 * transactions OR entries > 4 * transactions) THEN
        RAISE EXCEPTION 'payments counts out of bounds: %', (SELECT row_to_json(n) FROM n);
    END IF;
END
$$;

-- ---------------------------------------------------------------- user service
INSERT INTO user_schema."user" (id, public_id, email, full_name, phone, country, date_of_birth, status, tier,
                                created_at, updated_at)
SELECT g,
       md5('payments-user:' || g)::uuid,
       CASE WHEN pg_temp.h(b, 1) % 100 < 3 THEN initcap(pg_temp.pick(pg_temp.first_slugs(), f)) || '.' || g || '@Bank.Example'
            ELSE pg_temp.pick(pg_temp.first_slugs(), f) || '.' || g || '@'
                 || pg_temp.pick('{mail.example,inbox.example,correo.example,posteo.example}', pg_temp.h(b, 2))
       END,
       pg_temp.pick(pg_temp.first_names(), f) || ' ' || pg_temp.pick(pg_temp.last_names(), pg_temp.h(b, 3)),
       CASE WHEN pg_temp.h(b, 4) % 100 < 20 THEN NULL
            WHEN pg_temp.h(b, 4) % 100 < 23 THEN ''
            ELSE '+' || (1 + pg_temp.h(b, 5) % 89) || ' ' || lpad((pg_temp.h(b, 6) % 1000000000)::text, 9, '0')
       END,
       pg_temp.pick('{DE,ES,FR,GB,US,BR,JP,AE,PL,IN,NO,KW,SE,CH}', pg_temp.h(b, 7)),
       CASE WHEN pg_temp.h(b, 8) % 100 < 10 THEN NULL ELSE date '1950-01-01' + (pg_temp.h(b, 9) % 20000)::integer END,
       CASE WHEN s < 10 THEN 'pending_kyc' WHEN s < 13 THEN 'frozen' WHEN s < 18 THEN 'closed' ELSE 'active'
       END::user_schema.user_status,
       pg_temp.pick('{basic,basic,basic,plus,plus,premium}', pg_temp.h(b, 10)),
       c,
       c + pg_temp.secs(CASE WHEN s < 18 OR pg_temp.h(b, 11) % 100 < 30 THEN 60 + pg_temp.h(b, 12) % 15552000 ELSE 0 END)
FROM n, pg_temp.rows(n.users) AS r,
     LATERAL (SELECT pg_temp.h(b, 13) % 20 AS f, pg_temp.h(b, 14) % 100 AS s, pg_temp.at(pg_temp.h(b, 15)) AS c) AS x;

-- row g is the k-th address of user u; the first one is primary
INSERT INTO user_schema.addresses (id, user_id, kind, line1, line2, city, postal_code, country, is_primary,
                                   created_at, updated_at)
SELECT g, u.id,
       CASE WHEN x.k = 0 THEN 'home' ELSE pg_temp.pick('{billing,business}', pg_temp.h(b, 21)) END,
       pg_temp.pick(ARRAY['Calle de Alcalá 42', 'Hauptstraße 5', '1-2-3 Shibuya, Shibuya-ku', 'Rua Augusta 1500',
                          'ul. Marszałkowska 10/4', '10 Downing Street', 'Sheikh Zayed Rd, Tower 3', 'Storgata 1',
                          'Bahnhofstrasse 1', '221 MG Road', 'Drottninggatan 71', 'Rue de Rivoli 99'], pg_temp.h(b, 22)),
       CASE WHEN pg_temp.h(b, 23) % 100 < 60 THEN NULL
            WHEN pg_temp.h(b, 23) % 100 < 70 THEN ''
            ELSE pg_temp.pick(ARRAY['Apt 4B', '3. OG links', 'Piso 2º izq.', 'c/o Müller', '7F 701号室'], pg_temp.h(b, 24))
       END,
       pg_temp.pick(ARRAY['Madrid', 'München', '東京', 'São Paulo', 'Warszawa', 'London', 'Dubai', 'Oslo', 'Zürich',
                          'Bengaluru', 'Stockholm', 'Paris'], pg_temp.h(b, 22)),
       CASE WHEN ctry = 'AE' OR pg_temp.h(b, 25) % 100 < 5 THEN NULL
            ELSE lpad((pg_temp.h(b, 26) % 100000)::text, 5, '0') END,
       ctry,
       x.k = 0,
       u.created_at + pg_temp.secs(x.k * 86400 + pg_temp.h(b, 27) % 3600),
       u.created_at + pg_temp.secs(x.k * 86400 + pg_temp.h(b, 27) % 3600
                                   + CASE WHEN pg_temp.h(b, 28) % 100 < 20 THEN pg_temp.h(b, 29) % 15552000 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.addresses) AS r
     CROSS JOIN LATERAL (SELECT 1 + (g - 1) % n.users AS uid, (g - 1) / n.users AS k,
                                pg_temp.pick('{ES,DE,JP,BR,PL,GB,AE,NO,CH,IN,SE,FR}', pg_temp.h(b, 22)) AS ctry) AS x
     JOIN user_schema."user" AS u ON u.id = x.uid;

-- ---------------------------------------------------------------- wallet service
INSERT INTO wallet_schema.currencies (code, name, minor_units, symbol, is_active, updated_at)
SELECT pg_temp.pick(pg_temp.ccy(), g - 1), pg_temp.pick(pg_temp.ccy_names(), g - 1), pg_temp.mu(g - 1)::smallint,
       pg_temp.pick(pg_temp.ccy_symbols(), g - 1), true,
       timestamptz '2023-01-01 00:00:00+00' + pg_temp.secs(g * 60)
FROM n, pg_temp.rows(n.currencies) AS r;

INSERT INTO wallet_schema.wallets (id, user_id, currency, balance, status, iban, limits, created_at, updated_at)
SELECT g, u.id, pg_temp.pick(pg_temp.ccy(), x.ci),
       CASE WHEN st = 'closed' OR pg_temp.h(b, 31) % 100 < 5 THEN 0
            ELSE round((pg_temp.h(b, 32) % 1000000) / 100.0 * pg_temp.scale(x.ci), pg_temp.mu(x.ci)) END,
       st::wallet_schema.wallet_status,
       CASE WHEN x.ci = 0 THEN pg_temp.pick('{DE,ES,FR,NL}', pg_temp.h(b, 33)) || lpad((pg_temp.h(b, 34) % 100)::text, 2, '0')
                               || lpad((pg_temp.h(b, 35) % 1000000000)::text, 9, '0') || lpad(g::text, 9, '0')
            WHEN x.ci = 2 THEN 'GB' || lpad((pg_temp.h(b, 34) % 100)::text, 2, '0') || 'MONZ' || lpad(g::text, 14, '0')
       END,
       CASE WHEN pg_temp.h(b, 36) % 100 < 40 THEN NULL
            ELSE jsonb_build_object('daily', 1000 * (1 + pg_temp.h(b, 37) % 10), 'monthly', 10000 * (1 + pg_temp.h(b, 37) % 10),
                                    'atm', CASE WHEN pg_temp.h(b, 38) % 2 = 0 THEN 'null'::jsonb ELSE '500'::jsonb END)
       END,
       u.created_at + pg_temp.secs(x.k * 86400 + 60),
       u.created_at + pg_temp.secs(x.k * 86400 + 60 + pg_temp.h(b, 39) % 15552000)
FROM n
     CROSS JOIN pg_temp.rows(n.wallets) AS r
     CROSS JOIN LATERAL (SELECT 1 + (g - 1) % n.users AS uid, (g - 1) / n.users AS k,
                                (1 + (g - 1) % n.users + (g - 1) / n.users) % 12 AS ci,
                                pg_temp.pick('{active,active,active,active,active,active,active,active,frozen,closed}',
                                             pg_temp.h(b, 40)) AS st) AS x
     JOIN user_schema."user" AS u ON u.id = x.uid;

-- ---------------------------------------------------------------- payment service
-- 70 % of the orders are in the user's primary currency; total = sum(qty * unit_price) of 1..3 items
INSERT INTO payment_schema."Order" (id, user_id, merchant_ref, currency, total, items, shipping, placed_at, updated_at)
SELECT g, x.u,
       'ORD-' || to_char(p, 'YYYYMMDD') || '-' || g,
       pg_temp.pick(pg_temp.ccy(), x.ci),
       q1 * p1 + CASE WHEN k >= 2 THEN q2 * p2 ELSE 0 END + CASE WHEN k >= 3 THEN q3 * p3 ELSE 0 END,
       CASE k WHEN 1 THEN jsonb_build_array(i1) WHEN 2 THEN jsonb_build_array(i1, i2) ELSE jsonb_build_array(i1, i2, i3) END,
       CASE WHEN pg_temp.h(b, 41) % 100 < 40 THEN NULL
            ELSE jsonb_build_object('method', pg_temp.pick('{DHL Express,Correos,La Poste,ヤマト運輸,pickup}', pg_temp.h(b, 42)),
                                    'address', jsonb_build_object('city', pg_temp.pick('{Madrid,München,東京,Oslo}', pg_temp.h(b, 43)),
                                                                  'zip', CASE WHEN pg_temp.h(b, 44) % 5 = 0 THEN 'null'::jsonb
                                                                              ELSE to_jsonb(lpad((pg_temp.h(b, 44) % 100000)::text, 5, '0')) END),
                                    'tracking', CASE WHEN pg_temp.h(b, 45) % 3 = 0 THEN 'null'::jsonb
                                                     ELSE to_jsonb('TRK' || (1000000000 + g)) END)
       END,
       p,
       p + pg_temp.secs(CASE WHEN pg_temp.h(b, 46) % 100 < 30 THEN 60 + pg_temp.h(b, 47) % 604800 ELSE 0 END)
FROM n, pg_temp.rows(n.orders) AS r,
     LATERAL (SELECT 1 + pg_temp.h(b, 48) % n.users AS u) AS u,
     LATERAL (SELECT u.u,
                     CASE WHEN pg_temp.h(b, 49) % 100 < 70 THEN u.u % 12 ELSE pg_temp.h(b, 50) % 12 END AS ci,
                     1 + pg_temp.h(b, 51) % 3 AS k,
                     pg_temp.at(pg_temp.h(b, 52)) AS p) AS x,
     LATERAL (SELECT 1 + pg_temp.h(b, 53) % 3 AS q1, pg_temp.money(pg_temp.h(b, 54), x.ci) AS p1,
                     1 + pg_temp.h(b, 55) % 5 AS q2, pg_temp.money(pg_temp.h(b, 56), x.ci) AS p2,
                     1 + pg_temp.h(b, 57) % 2 AS q3, pg_temp.money(pg_temp.h(b, 58), x.ci) AS p3) AS y,
     LATERAL (SELECT jsonb_build_object('sku', 'SKU-' || (1000 + pg_temp.h(b, 59) % 9000), 'qty', q1, 'unit_price', p1,
                                        'name', pg_temp.pick(pg_temp.products(), pg_temp.h(b, 60))) AS i1,
                     jsonb_build_object('sku', 'SKU-' || (1000 + pg_temp.h(b, 61) % 9000), 'qty', q2, 'unit_price', p2,
                                        'name', pg_temp.pick(pg_temp.products(), pg_temp.h(b, 62))) AS i2,
                     jsonb_build_object('sku', 'SKU-' || (1000 + pg_temp.h(b, 63) % 9000), 'qty', q3, 'unit_price', p3,
                                        'name', pg_temp.pick(pg_temp.products(), pg_temp.h(b, 64)),
                                        'gift_wrap', pg_temp.h(b, 65) % 2 = 0) AS i3) AS z;

-- 10 % are wallet top-ups (no order; into the user's primary wallet); the rest pay one order each
INSERT INTO payment_schema.payments (id, order_id, user_id, wallet_id, amount, fee, currency, status, method,
                                     card_last4, failure_code, idempotency_key, metadata, authorized_at, captured_at,
                                     created_at, updated_at)
SELECT g, o.id, y.u,
       CASE WHEN topup OR method = 'wallet' THEN y.u END,
       amt,
       CASE WHEN method IN ('card', 'apple_pay') THEN round(amt * 0.029 + 0.25 * pg_temp.scale(ci), pg_temp.mu(ci))
            WHEN method = 'sepa_debit' THEN 0.35
            ELSE 0 END,
       pg_temp.pick(pg_temp.ccy(), ci),
       st::payment_schema.payment_status,
       method,
       CASE WHEN method IN ('card', 'apple_pay') THEN lpad((pg_temp.h(b, 71) % 10000)::text, 4, '0') END,
       CASE WHEN st = 'failed' THEN pg_temp.pick('{card_declined,insufficient_funds,expired_card,do_not_honor,'
                                                 '3ds_failed,processing_error}', pg_temp.h(b, 72)) END,
       md5('idem:' || g)::uuid,
       CASE WHEN pg_temp.h(b, 73) % 100 < 50 THEN '{}'::jsonb
            ELSE pg_temp.pickj(ARRAY['{"3ds": {"version": "2.2.0", "eci": "05"}, "risk": {"score": 12, "rules": []}}',
                                     '{"device": {"os": "iOS 17.4", "app": "5.12.0"}, "ip_country": "ES"}',
                                     '{"checkout": "web", "coupon": null, "locale": "de-DE"}',
                                     '{"note": "Zahlung für Rechnung Nr. 2024/117 – danke!", "channel": "api"}']::jsonb[],
                               pg_temp.h(b, 74))
       END,
       au,
       ca,
       cr,
       greatest(cr, au, ca) + pg_temp.secs(CASE WHEN st IN ('refunded', 'partially_refunded')
                                                THEN 86400 + pg_temp.h(b, 75) % 2592000 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.payments) AS r
     CROSS JOIN LATERAL (SELECT pg_temp.h(b, 76) % 100 < 10 AS topup, 1 + pg_temp.h(b, 77) % n.orders AS oid,
                                pg_temp.h(b, 78) % 100 AS s) AS x
     LEFT JOIN payment_schema."Order" AS o ON o.id = x.oid AND NOT x.topup
     CROSS JOIN LATERAL (SELECT coalesce(o.user_id, 1 + pg_temp.h(b, 79) % n.users) AS u) AS y
     CROSS JOIN LATERAL (SELECT coalesce(array_position(pg_temp.ccy(), o.currency::text) - 1, y.u % 12) AS ci,
                                coalesce(o.placed_at + pg_temp.secs(5 + pg_temp.h(b, 80) % 600), pg_temp.at(pg_temp.h(b, 81))) AS cr,
                                CASE WHEN s < 5 THEN 'pending' WHEN s < 10 THEN 'authorized' WHEN s < 75 THEN 'captured'
                                     WHEN s < 85 THEN 'failed' WHEN s < 90 THEN 'refunded' WHEN s < 94 THEN 'partially_refunded'
                                     ELSE 'cancelled' END AS st) AS z
     CROSS JOIN LATERAL (SELECT coalesce(o.total, pg_temp.money(pg_temp.h(b, 82), z.ci)) AS amt,
                                CASE WHEN topup THEN pg_temp.pick('{card,bank_transfer,apple_pay}', pg_temp.h(b, 83))
                                     WHEN z.ci = y.u % 12 AND pg_temp.h(b, 84) % 100 < 25 THEN 'wallet'
                                     WHEN z.ci = 0 AND pg_temp.h(b, 85) % 100 < 30 THEN 'sepa_debit'
                                     ELSE pg_temp.pick('{card,card,card,apple_pay,bank_transfer}', pg_temp.h(b, 85))
                                END AS method,
                                CASE WHEN st IN ('authorized', 'captured', 'refunded', 'partially_refunded', 'cancelled')
                                     THEN z.cr + pg_temp.secs(1 + pg_temp.h(b, 86) % 30) END AS au) AS v
     CROSS JOIN LATERAL (SELECT CASE WHEN st IN ('captured', 'refunded', 'partially_refunded')
                                     THEN v.au + pg_temp.secs(60 + pg_temp.h(b, 87) % 172800) END AS ca) AS w;

INSERT INTO payment_schema.refunds (id, payment_id, amount, currency, reason, status, created_at, updated_at)
SELECT g, p.id,
       greatest(round(p.amount * (1 + pg_temp.h(b, 91) % 100) / 100, pg_temp.mu(ci)),
                CASE pg_temp.mu(ci) WHEN 0 THEN 1 WHEN 3 THEN 0.001 ELSE 0.01 END),
       p.currency,
       CASE WHEN pg_temp.h(b, 92) % 100 < 30 THEN NULL
            WHEN pg_temp.h(b, 92) % 100 < 35 THEN ''
            ELSE pg_temp.pick(ARRAY['requested_by_customer', 'Artikel beschädigt', 'Producto no recibido', 'duplicate',
                                    'fraudulent', 'Commande annulée « à la demande du client »', '返品'], pg_temp.h(b, 93))
       END,
       pg_temp.pick('{succeeded,succeeded,succeeded,succeeded,pending,failed}', pg_temp.h(b, 94)),
       t,
       t + pg_temp.secs(CASE WHEN pg_temp.h(b, 95) % 100 < 70 THEN 30 + pg_temp.h(b, 96) % 259200 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.refunds) AS r
     JOIN payment_schema.payments AS p ON p.id = 1 + pg_temp.h(b, 97) % n.payments
     CROSS JOIN LATERAL (SELECT array_position(pg_temp.ccy(), p.currency::text) - 1 AS ci,
                                coalesce(p.captured_at, p.created_at) + pg_temp.secs(3600 + pg_temp.h(b, 98) % 2592000) AS t) AS x;

-- ---------------------------------------------------------------- ledger service
-- account g holds currency (g - 1) mod 12; every currency has accounts / 12 accounts of the five types
INSERT INTO ledger_schema.accounts (id, code, name, type, currency, is_system, created_at, updated_at)
SELECT g,
       (1 + j % 5) || lpad((j / 5)::text, greatest(3, length((j / 5)::text)), '0') || '-' || cur,
       CASE j % 5 WHEN 0 THEN 'Customer funds' WHEN 1 THEN 'Kundenverbindlichkeiten' WHEN 2 THEN 'Fee revenue'
                  WHEN 3 THEN 'Pérdidas por contracargos' ELSE 'Share capital' END
           || CASE WHEN j / 5 = 0 THEN '' ELSE ' #' || (j / 5 + 1) END || ' – ' || cur,
       (ARRAY['asset', 'liability', 'revenue', 'expense', 'equity'])[1 + (j % 5)::integer]::ledger_schema.account_type,
       cur,
       j < 5,
       timestamptz '2023-01-01 00:00:00+00' + pg_temp.secs(g * 60),
       timestamptz '2023-01-01 00:00:00+00' + pg_temp.secs(g * 60 + CASE WHEN g % 4 = 0 THEN pg_temp.h(b, 101) % 31536000 ELSE 0 END)
FROM n, pg_temp.rows(n.accounts) AS r,
     LATERAL (SELECT (g - 1) / 12 AS j, pg_temp.pick(pg_temp.ccy(), g - 1) AS cur) AS x;

-- kinds payment and refund point at a payment and carry its amount and currency
INSERT INTO ledger_schema.transactions (id, reference, kind, payment_id, currency, amount, description, posted_at,
                                        updated_at)
SELECT g, 'TX-' || (1000000 + g), kind, p.id,
       coalesce(p.currency, pg_temp.pick(pg_temp.ccy(), pg_temp.h(b, 111) % 12)),
       coalesce(p.amount, pg_temp.money(pg_temp.h(b, 112), pg_temp.h(b, 111) % 12)),
       CASE WHEN pg_temp.h(b, 113) % 100 < 30 THEN NULL
            WHEN pg_temp.h(b, 113) % 100 < 35 THEN ''
            ELSE CASE kind WHEN 'payment' THEN 'Payment ' || p.id WHEN 'refund' THEN 'Rückerstattung zu Zahlung ' || p.id
                           WHEN 'transfer' THEN 'Transferencia entre carteras' WHEN 'fee' THEN 'Frais de service mensuels'
                           WHEN 'fx_conversion' THEN 'FX ' || pg_temp.pick(pg_temp.ccy(), pg_temp.h(b, 114)) || '→'
                                                    || pg_temp.pick(pg_temp.ccy(), pg_temp.h(b, 111) % 12)
                           ELSE 'Manual adjustment – ticket #' || (4000 + pg_temp.h(b, 115) % 1000) END
       END,
       t,
       t + pg_temp.secs(CASE WHEN pg_temp.h(b, 116) % 100 < 3 THEN 60 + pg_temp.h(b, 117) % 86400 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.transactions) AS r
     CROSS JOIN LATERAL (SELECT pg_temp.pick('{payment,payment,payment,payment,payment,payment,payment,payment,payment,'
                                             'payment,payment,refund,refund,transfer,transfer,transfer,fee,fee,'
                                             'fx_conversion,adjustment}', pg_temp.h(b, 118)) AS kind) AS x
     LEFT JOIN payment_schema.payments AS p ON p.id = 1 + pg_temp.h(b, 119) % n.payments AND x.kind IN ('payment', 'refund')
     CROSS JOIN LATERAL (SELECT coalesce(p.created_at + pg_temp.secs(60 + pg_temp.h(b, 120) % 3600),
                                         pg_temp.at(pg_temp.h(b, 121))) AS t) AS y;

-- row g is leg k of transaction t, which has m legs; leg 0 debits the amount, legs 1 .. m-1 credit it in parts
INSERT INTO ledger_schema.entries (id, transaction_id, account_id, amount, currency, memo, created_at, updated_at)
SELECT g, tx.id,
       1 + y.ci + 12 * (pg_temp.h(b, 131) % (n.accounts / 12)),
       CASE WHEN x.k = 0 THEN tx.amount
            WHEN x.k < y.m - 1 THEN -z.part
            ELSE -(tx.amount - (y.m - 2) * z.part) END,
       tx.currency,
       CASE WHEN pg_temp.h(b, 132) % 100 < 70 THEN NULL
            WHEN x.k = 0 THEN pg_temp.pick('{"debit customer funds","Belastung Kundenkonto"}', pg_temp.h(b, 133))
            ELSE pg_temp.pick('{"credit merchant","fee share",comisión,""}', pg_temp.h(b, 133)) END,
       tx.posted_at,
       tx.posted_at
FROM n
     CROSS JOIN pg_temp.rows(n.entries) AS r
     CROSS JOIN LATERAL (SELECT 1 + (g - 1) % n.transactions AS t, (g - 1) / n.transactions AS k) AS x
     JOIN ledger_schema.transactions AS tx ON tx.id = x.t
     CROSS JOIN LATERAL (SELECT n.entries / n.transactions
                                + CASE WHEN x.t <= n.entries % n.transactions THEN 1 ELSE 0 END AS m,
                                array_position(pg_temp.ccy(), tx.currency::text) - 1 AS ci) AS y
     CROSS JOIN LATERAL (SELECT trunc(tx.amount / (y.m - 1), pg_temp.mu(y.ci)) AS part) AS z;

-- ---------------------------------------------------------------- compliance service
INSERT INTO compliance_schema.kyc_checks (id, user_id, level, provider, status, risk_score, document_country, result,
                                          checked_at, created_at, updated_at)
SELECT g, 1 + pg_temp.h(b, 141) % n.users,
       pg_temp.pick('{basic,basic,standard,standard,enhanced}', pg_temp.h(b, 142))::compliance_schema.kyc_level,
       pg_temp.pick('{onfido,sumsub,veriff,manual}', pg_temp.h(b, 143)),
       st,
       CASE WHEN st = 'pending' THEN NULL ELSE (pg_temp.h(b, 144) % 101)::smallint END,
       CASE WHEN pg_temp.h(b, 145) % 100 < 15 THEN NULL ELSE pg_temp.pick('{ES,DE,FR,GB,BR,JP,AE,PL,IN,NO}', pg_temp.h(b, 146)) END,
       CASE WHEN st = 'pending' THEN NULL
            ELSE jsonb_build_object(
                'checks', jsonb_build_object('document', pg_temp.pick('{clear,clear,consider}', pg_temp.h(b, 147)),
                                             'facial_similarity', pg_temp.pick('{clear,consider,unidentified}', pg_temp.h(b, 148)),
                                             'watchlist', CASE WHEN pg_temp.h(b, 149) % 20 = 0 THEN '"hit"'::jsonb ELSE '"clear"'::jsonb END),
                'reasons', CASE WHEN st = 'passed' THEN '[]'::jsonb
                                ELSE jsonb_build_array(pg_temp.pick('{document_expired,"selfie mismatch",pep_match,"Adresse unleserlich"}',
                                                                    pg_temp.h(b, 150))) END,
                'provider_ref', 'chk_' || md5('kyc:' || g))
       END,
       CASE WHEN st = 'pending' THEN NULL ELSE c + pg_temp.secs(30 + pg_temp.h(b, 151) % 172800) END,
       c,
       c + pg_temp.secs(CASE WHEN st = 'pending' THEN 0 ELSE 30 + pg_temp.h(b, 151) % 172800 END)
FROM n, pg_temp.rows(n.kyc_checks) AS r,
     LATERAL (SELECT pg_temp.pick('{passed,passed,passed,passed,passed,failed,review,pending,expired}', pg_temp.h(b, 152)) AS st,
                     pg_temp.at(pg_temp.h(b, 153)) AS c) AS x;

INSERT INTO compliance_schema.aml_alerts (id, payment_id, rule_code, severity, status, notes, created_at, updated_at)
SELECT g, p.id,
       pg_temp.pick('{VELOCITY_24H,HIGH_RISK_COUNTRY,STRUCTURING,PEP_MATCH,SANCTIONS_FUZZY,LARGE_CASH_EQUIVALENT}', pg_temp.h(b, 161)),
       (1 + pg_temp.h(b, 162) % 5)::smallint,
       pg_temp.pick('{open,investigating,closed_false_positive,closed_false_positive,escalated,reported}', pg_temp.h(b, 163)),
       CASE WHEN pg_temp.h(b, 164) % 100 < 40 THEN NULL
            WHEN pg_temp.h(b, 164) % 100 < 50 THEN ''
            ELSE pg_temp.pick(ARRAY['Name similarity 0.87 with list entry; different DOB → false positive.',
                                    'Kunde hat Herkunft der Mittel belegt.', 'Escalado al MLRO.',
                                    E'SAR filed.\nRef: 2024-FIU-0042', 'Transactions juste sous le seuil ⚠️'],
                              pg_temp.h(b, 165))
       END,
       t,
       t + pg_temp.secs(CASE WHEN pg_temp.h(b, 166) % 100 < 70 THEN 3600 + pg_temp.h(b, 167) % 1209600 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.aml_alerts) AS r
     JOIN payment_schema.payments AS p ON p.id = 1 + pg_temp.h(b, 168) % n.payments
     CROSS JOIN LATERAL (SELECT p.created_at + pg_temp.secs(60 + pg_temp.h(b, 169) % 86400) AS t) AS x;

-- ---------------------------------------------------------------- analytics service
-- row g is currency (g - 1) mod 12 on day (g - 1) / 12 after 2023-01-01
INSERT INTO analytics_schema.daily_volumes (day, currency, payments_count, volume, fees, refunds, updated_at)
SELECT date '2023-01-01' + d::integer, pg_temp.pick(pg_temp.ccy(), ci), cnt,
       vol,
       round(vol * 0.021, pg_temp.mu(ci)),
       round(vol * (pg_temp.h(b, 171) % 8) / 100, pg_temp.mu(ci)),
       timestamptz '2023-01-02 02:00:00+00' + d * interval '1 day'
           + pg_temp.secs(CASE WHEN pg_temp.h(b, 172) % 100 < 5 THEN 86400 + pg_temp.h(b, 173) % 3600 ELSE 0 END)
FROM n, pg_temp.rows(n.daily_volumes) AS r,
     LATERAL (SELECT (g - 1) / 12 AS d, (g - 1) % 12 AS ci,
                     CASE WHEN pg_temp.h(b, 174) % 100 < 5 THEN 0 ELSE (pg_temp.h(b, 175) % 500)::integer END AS cnt) AS x,
     LATERAL (SELECT cnt * pg_temp.money(pg_temp.h(b, 176), ci) AS vol) AS y;

INSERT INTO analytics_schema.events (id, user_id, session_id, name, properties, occurred_at, updated_at)
SELECT g,
       CASE WHEN pg_temp.h(b, 181) % 100 < 30 THEN NULL ELSE 1 + pg_temp.h(b, 182) % n.users END,
       md5('payments-session:' || (g / 6))::uuid,
       ev,
       jsonb_build_object(
           'screen', CASE ev WHEN 'view_balance' THEN '/wallets' WHEN 'start_payment' THEN '/pay' ELSE '/' END,
           'platform', pg_temp.pick('{ios,android,web,web}', pg_temp.h(b, 183)),
           'amount', CASE WHEN ev IN ('start_payment', 'payment_succeeded', 'payment_failed')
                          THEN jsonb_build_object('value', pg_temp.money(pg_temp.h(b, 184), pg_temp.h(b, 185) % 12),
                                                  'currency', pg_temp.pick(pg_temp.ccy(), pg_temp.h(b, 185) % 12))
                          ELSE 'null'::jsonb END,
           'experiment', CASE WHEN pg_temp.h(b, 186) % 100 < 70 THEN '{}'::jsonb
                              ELSE jsonb_build_object('id', 'exp_' || pg_temp.h(b, 187) % 5, 'variant',
                                                      pg_temp.pick('{control,"B – grüner Knopf"}', pg_temp.h(b, 188))) END),
       t,
       t
FROM n, pg_temp.rows(n.events) AS r,
     LATERAL (SELECT pg_temp.pick('{app_open,app_open,view_balance,start_payment,payment_succeeded,payment_failed,add_card,'
                                  'kyc_started,kyc_completed,referral_link_copied}', pg_temp.h(b, 189)) AS ev,
                     pg_temp.at(pg_temp.h(b, 190)) AS t) AS x;

-- ---------------------------------------------------------------- security service
INSERT INTO security_schema.api_keys (id, user_id, prefix, key_hash, name, scopes, last_used_at, expires_at, revoked_at,
                                      created_at, updated_at)
SELECT g, 1 + pg_temp.h(b, 191) % n.users,
       CASE WHEN pg_temp.h(b, 192) % 4 = 0 THEN 'pk_test_' ELSE 'pk_live_' END || substr(md5('key:' || g), 1, 8) || g,
       sha256(convert_to('apikey:' || g, 'UTF8')),
       pg_temp.pick(ARRAY['CI/CD', 'Shopify plugin', 'Zapier', 'test 🔑', 'Buchhaltung (DATEV)', 'ERP – producción', ''],
                    pg_temp.h(b, 193)),
       CASE WHEN pg_temp.h(b, 194) % 100 < 15 THEN '{}'::text[]
            ELSE (ARRAY['payments:read', pg_temp.pick('{payments:write,refunds:write,balance:read}', pg_temp.h(b, 195)),
                        'webhooks:manage'])[1:1 + pg_temp.h(b, 196) % 3] END,
       lu,
       CASE WHEN pg_temp.h(b, 197) % 100 < 60 THEN NULL ELSE c + interval '365 days' END,
       rv,
       c,
       greatest(c, lu, rv)
FROM n, pg_temp.rows(n.api_keys) AS r,
     LATERAL (SELECT pg_temp.at(pg_temp.h(b, 198)) AS c) AS x,
     LATERAL (SELECT CASE WHEN pg_temp.h(b, 199) % 100 < 25 THEN NULL ELSE c + pg_temp.secs(60 + pg_temp.h(b, 200) % 15552000) END AS lu,
                     CASE WHEN pg_temp.h(b, 201) % 100 < 85 THEN NULL ELSE c + pg_temp.secs(86400 + pg_temp.h(b, 202) % 15552000) END AS rv) AS y;

INSERT INTO security_schema.login_attempts (id, user_id, email_tried, ip, user_agent, success, failure_reason,
                                            attempted_at, updated_at)
SELECT g, u.id,
       CASE WHEN u.id IS NULL THEN pg_temp.pick('{admin@bank.example,"test@test",jose@gmial.example,root,""}', pg_temp.h(b, 211))
            WHEN pg_temp.h(b, 212) % 100 < 8 THEN upper(u.email)
            WHEN pg_temp.h(b, 212) % 100 < 12 THEN ' ' || u.email || ' '
            ELSE u.email END,
       CASE WHEN ip % 100 < 3 THEN NULL
            WHEN ip % 100 < 20 THEN ('2001:db8::' || to_hex((ip / 100 % 65535)::integer))::inet
            ELSE ('198.51.' || ip / 100 % 256 || '.' || ip / 25600 % 256)::inet END,
       CASE WHEN pg_temp.h(b, 213) % 100 < 5 THEN NULL
            WHEN pg_temp.h(b, 213) % 100 < 7 THEN ''
            ELSE pg_temp.pick(ARRAY['Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15',
                                    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0',
                                    'PaymentsApp/5.12.0 (Android 14; Pixel 8)', 'curl/8.5.0', 'python-requests/2.31'],
                              pg_temp.h(b, 214))
       END,
       ok,
       CASE WHEN ok THEN NULL WHEN u.id IS NULL THEN 'unknown_user'
            ELSE pg_temp.pick('{bad_password,bad_password,mfa_failed,locked}', pg_temp.h(b, 215)) END,
       t,
       t
FROM n
     CROSS JOIN pg_temp.rows(n.login_attempts) AS r
     CROSS JOIN LATERAL (SELECT CASE WHEN pg_temp.h(b, 216) % 100 < 10 THEN NULL ELSE 1 + pg_temp.h(b, 217) % n.users END AS uid,
                                pg_temp.h(b, 218) AS ip, pg_temp.at(pg_temp.h(b, 219)) AS t) AS x
     LEFT JOIN user_schema."user" AS u ON u.id = x.uid
     CROSS JOIN LATERAL (SELECT u.id IS NOT NULL AND pg_temp.h(b, 220) % 100 >= 15 AS ok) AS y;

-- ---------------------------------------------------------------- notification service
INSERT INTO notification_schema.notifications (id, user_id, channel, template, locale, payload, status, attempts, sent_at,
                                               created_at, updated_at)
SELECT g, 1 + pg_temp.h(b, 221) % n.users,
       pg_temp.pick('{email,email,push,push,sms,webhook}', pg_temp.h(b, 222))::notification_schema.channel,
       tpl,
       pg_temp.pick('{en-GB,de-DE,es-ES,fr-FR,pt-BR,ja-JP,ar-AE}', pg_temp.h(b, 223)),
       jsonb_build_object(
           'amount', CASE WHEN tpl IN ('payment_received', 'payment_failed', 'refund_issued')
                          THEN jsonb_build_object('value', pg_temp.money(pg_temp.h(b, 224), ci)::text,
                                                  'currency', pg_temp.pick(pg_temp.ccy(), ci))
                          ELSE 'null'::jsonb END,
           'title', pg_temp.pick(ARRAY['Zahlung erhalten ✅', 'Payment failed', 'Reembolso emitido', 'Nouvelle connexion détectée',
                                       'お支払いを受け取りました', 'كشف الحساب الشهري'], pg_temp.h(b, 225)),
           'vars', jsonb_build_object('first_name', pg_temp.pick(pg_temp.first_names(), pg_temp.h(b, 226)),
                                      'last4', CASE WHEN pg_temp.h(b, 227) % 2 = 0 THEN 'null'::jsonb
                                                    ELSE to_jsonb(lpad((pg_temp.h(b, 228) % 10000)::text, 4, '0')) END)),
       st,
       (CASE st WHEN 'queued' THEN 0 WHEN 'failed' THEN 3 ELSE 1 + pg_temp.h(b, 229) % 2 END)::smallint,
       CASE WHEN st IN ('queued', 'failed') THEN NULL ELSE c + pg_temp.secs(1 + pg_temp.h(b, 230) % 300) END,
       c,
       c + pg_temp.secs(CASE WHEN st = 'queued' THEN 0 ELSE 1 + pg_temp.h(b, 230) % 300 + pg_temp.h(b, 231) % 600 END)
FROM n, pg_temp.rows(n.notifications) AS r,
     LATERAL (SELECT pg_temp.pick('{payment_received,payment_failed,refund_issued,kyc_required,login_new_device,'
                                  'monthly_statement}', pg_temp.h(b, 232)) AS tpl,
                     pg_temp.pick('{delivered,delivered,delivered,sent,sent,queued,failed,bounced}', pg_temp.h(b, 233)) AS st,
                     pg_temp.h(b, 234) % 12 AS ci,
                     pg_temp.at(pg_temp.h(b, 235)) AS c) AS x;

-- ---------------------------------------------------------------- identity sequences continue after the data
DO $$
DECLARE
    col record;
BEGIN
    FOR col IN
        SELECT c.table_schema, c.table_name, c.column_name
        FROM information_schema.columns AS c
        WHERE c.table_schema IN ('user_schema', 'wallet_schema', 'payment_schema', 'ledger_schema', 'compliance_schema',
                                 'analytics_schema', 'security_schema', 'notification_schema')
          AND c.is_identity = 'YES'
    LOOP
        EXECUTE format('SELECT setval(pg_get_serial_sequence(%L, %L), coalesce(max(%I), 0) + 1, false) FROM %I.%I',
                       format('%I.%I', col.table_schema, col.table_name), col.column_name, col.column_name,
                       col.table_schema, col.table_name);
    END LOOP;
END
$$;
