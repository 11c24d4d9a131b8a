-- freezone: deterministic data generator, run after schema.sql and before constraints.sql.
--
-- Row counts come from the custom settings dbsplit.<table> (set by dbsplit.samples with set_config from
-- sizes.yaml). Every value derives from the row number g: pg_temp.rows() pairs it with a mixed value b,
-- and pg_temp.h(b, k) draws stream k from b. Integer arithmetic only: no random(), now() or hashtext(),
-- so the same counts give the same bytes on every PostgreSQL version. Timestamps lie in
-- 2023-01-01 .. 2024-12-31 UTC (plus later updates); the session runs with TimeZone UTC.
--
-- Roles follow from the user id, so that other tables can pick staff without a join: user 1 is the
-- admin, ids = 7 (mod 50) are reviewers, = 17 (mod 50) support, = 9 (mod 40) consultants.

-- ---------------------------------------------------------------- helpers (session-local)
-- pg_temp.rows, h, pick, pickj, at and secs: ../generate_helpers.sql, run just before this script

-- the i-th reviewer (ids 7, 57, 107, ...) and consultant (ids 9, 49, 89, ...) among users 1..users
CREATE FUNCTION pg_temp.reviewer(i bigint, users bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 7 + 50 * (i % ((users - 7) / 50 + 1)) $$;

CREATE FUNCTION pg_temp.consultant(i bigint, users bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 9 + 40 * (i % ((users - 9) / 40 + 1)) $$;

CREATE FUNCTION pg_temp.first_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'José', 'Zoë', 'María', 'Jürgen', 'Anaïs', 'Søren', 'Łukasz', 'Chloé', 'Ömer', 'Ingrid',
    'Björn', 'Émilie', 'Priya', 'Rahul', 'Anjali', 'Dmitri', 'Olga', 'Wei', 'Mei', 'Grace'] $$;

CREATE FUNCTION pg_temp.first_slugs() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'jose', 'zoe', 'maria', 'juergen', 'anais', 'soeren', 'lukasz', 'chloe', 'oemer', 'ingrid',
    'bjoern', 'emilie', 'priya', 'rahul', 'anjali', 'dmitri', 'olga', 'wei', 'mei', 'grace'] $$;

CREATE FUNCTION pg_temp.last_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Núñez', 'Müller', 'García', 'Kowalski', 'Lefèvre', 'O''Brien', 'Smith', 'Yılmaz', 'Schröder',
    'Sharma', 'Iyer', 'Ivanova', 'Petrov', 'Zhang', 'Wang', 'D''Souza', 'Fernandes', 'Nguyễn'] $$;

-- Arabic names: the Latin spelling and the Arabic script, same order
CREATE FUNCTION pg_temp.ar_first_latin() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Mohammed', 'Ahmed', 'Fatima', 'Aisha', 'Omar', 'Layla', 'Khalid', 'Mariam', 'Yousef', 'Noura',
    'Hamdan', 'Sara'] $$;

CREATE FUNCTION pg_temp.ar_first() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'محمد', 'أحمد', 'فاطمة', 'عائشة', 'عمر', 'ليلى', 'خالد', 'مريم', 'يوسف', 'نورة', 'حمدان', 'سارة'] $$;

CREATE FUNCTION pg_temp.ar_last_latin() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Al Mansoori', 'Al Hashimi', 'Al Nuaimi', 'Al Shamsi', 'Al Ketbi', 'Haddad', 'Khoury', 'El-Sayed'] $$;

CREATE FUNCTION pg_temp.ar_last() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'المنصوري', 'الهاشمي', 'النعيمي', 'الشامسي', 'الكتبي', 'حداد', 'خوري', 'السيد'] $$;

-- the free zones: code, English and Arabic name, emirate, founding year (same order)
CREATE FUNCTION pg_temp.fz_codes() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'DMCC', 'JAFZA', 'DIFC', 'ADGM', 'RAKEZ', 'SHAMS', 'IFZA', 'DSO', 'MEYDAN', 'AFZ', 'SPC', 'FCC'] $$;

CREATE FUNCTION pg_temp.fz_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Dubai Multi Commodities Centre', 'Jebel Ali Free Zone', 'Dubai International Financial Centre',
    'Abu Dhabi Global Market', 'Ras Al Khaimah Economic Zone', 'Sharjah Media City',
    'International Free Zone Authority', 'Dubai Silicon Oasis', 'Meydan Free Zone', 'Ajman Free Zone',
    'Sharjah Publishing City', 'Fujairah Creative City'] $$;

CREATE FUNCTION pg_temp.fz_names_ar() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'مركز دبي للسلع المتعددة', 'المنطقة الحرة لجبل علي', 'مركز دبي المالي العالمي', 'سوق أبوظبي العالمي',
    'منطقة رأس الخيمة الاقتصادية', 'مدينة الشارقة للإعلام', 'سلطة المنطقة الحرة الدولية', 'واحة دبي للسيليكون',
    'المنطقة الحرة بميدان', 'المنطقة الحرة بعجمان', 'مدينة الشارقة للنشر', 'مدينة الفجيرة الإبداعية'] $$;

CREATE FUNCTION pg_temp.fz_emirates() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Dubai', 'Dubai', 'Dubai', 'Abu Dhabi', 'Ras Al Khaimah', 'Sharjah', 'Dubai', 'Dubai', 'Dubai', 'Ajman',
    'Sharjah', 'Fujairah'] $$;

CREATE FUNCTION pg_temp.fz_years() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    '2002', '1985', '2004', '2013', '2017', '2017', '2018', '2004', '2009', '1988', '2017', '2007'] $$;

-- ---------------------------------------------------------------- counts
CREATE TEMP TABLE n ON COMMIT DROP AS SELECT
    current_setting('dbsplit.users')::bigint               AS users,
    current_setting('dbsplit.freezones')::bigint           AS freezones,
    current_setting('dbsplit.license_types')::bigint       AS license_types,
    current_setting('dbsplit.companies')::bigint           AS companies,
    current_setting('dbsplit.setup_applications')::bigint  AS setup_applications,
    current_setting('dbsplit.documents')::bigint           AS documents,
    current_setting('dbsplit.document_reviews')::bigint    AS document_reviews,
    current_setting('dbsplit.research_queries')::bigint    AS research_queries,
    current_setting('dbsplit.research_answers')::bigint    AS research_answers,
    current_setting('dbsplit.scrape_sources')::bigint      AS scrape_sources,
    current_setting('dbsplit.scraped_pages')::bigint       AS scraped_pages;
ANALYZE n;

DO $$
BEGIN
    IF EXISTS (SELECT FROM n WHERE users < 9) THEN
        RAISE EXCEPTION 'freezone counts out of bounds: %', (SELECT row_to_json(n) FROM n);
    END IF;
END
$$;

-- ---------------------------------------------------------------- user service
INSERT INTO users (id, email, password_hash, status, email_verified_at, mfa_enabled, last_login_at, marketing_opt_in,
                   full_name, full_name_ar, national_id, passport_number, phone, nationality, date_of_birth,
                   avatar_url, bio, preferred_language, address, role, permissions, is_staff, role_granted_at,
                   role_granted_by, legacy_crm_id, deleted_at, created_at, updated_at)
SELECT g,
       CASE WHEN arab THEN lower(pick_first) ELSE pg_temp.pick(pg_temp.first_slugs(), f) END || '.' || g || '@'
           || pg_temp.pick('{mail.example,inbox.example,startup.example,consulting.example}', pg_temp.h(b, 1)),
       CASE WHEN pg_temp.h(b, 2) % 100 < 12 THEN '$2b$12$' || md5('bcrypt-salt:' || g) || substr(md5('bcrypt:' || g), 1, 21)
            ELSE '$argon2id$v=19$m=65536,t=3,p=4$' || substr(md5('salt:' || g), 1, 22) || '$' || md5('pw:' || g)
                 || substr(md5('pw2:' || g), 1, 11)
       END,
       st::user_status,
       CASE WHEN st = 'pending_verification' THEN NULL ELSE c + pg_temp.secs(60 + pg_temp.h(b, 3) % 86400) END,
       staff OR pg_temp.h(b, 4) % 100 < 20,
       CASE WHEN st = 'pending_verification' OR pg_temp.h(b, 5) % 100 < 10 THEN NULL
            ELSE c + pg_temp.secs(3600 + pg_temp.h(b, 6) % 31536000) END,
       CASE WHEN pg_temp.h(b, 7) % 100 < 30 THEN NULL ELSE pg_temp.h(b, 8) % 2 = 0 END,
       CASE WHEN arab THEN pick_first || ' ' || pg_temp.pick(pg_temp.ar_last_latin(), pg_temp.h(b, 9))
            ELSE pg_temp.pick(pg_temp.first_names(), f) || ' ' || pg_temp.pick(pg_temp.last_names(), pg_temp.h(b, 10))
       END,
       CASE WHEN arab AND pg_temp.h(b, 11) % 100 < 70
            THEN pg_temp.pick(pg_temp.ar_first(), fa) || ' ' || pg_temp.pick(pg_temp.ar_last(), pg_temp.h(b, 9))
       END,
       CASE WHEN resident THEN '784-' || (1960 + pg_temp.h(b, 12) % 45) || '-'
                               || lpad((pg_temp.h(b, 13) % 10000000)::text, 7, '0') || '-' || (g % 10)
       END,
       CASE WHEN pg_temp.h(b, 14) % 100 < 20 THEN NULL
            ELSE chr(65 + (pg_temp.h(b, 15) % 26)::integer) || lpad((pg_temp.h(b, 16) % 100000000)::text, 8, '0')
       END,
       CASE WHEN pg_temp.h(b, 17) % 100 < 15 THEN NULL
            WHEN pg_temp.h(b, 17) % 100 < 20 THEN ''
            WHEN resident THEN '+971 5' || pg_temp.h(b, 18) % 10 || ' ' || lpad((pg_temp.h(b, 19) % 10000000)::text, 7, '0')
            ELSE '+' || pg_temp.pick('{44,91,92,33,49,7,86,20,1}', pg_temp.h(b, 18)) || ' '
                 || lpad((pg_temp.h(b, 19) % 1000000000)::text, 9, '0')
       END,
       CASE WHEN pg_temp.h(b, 20) % 100 < 5 THEN NULL
            WHEN arab THEN pg_temp.pick('{AE,AE,AE,SA,EG,JO,LB,OM}', pg_temp.h(b, 21))
            ELSE pg_temp.pick('{IN,IN,PK,GB,FR,DE,ES,RU,CN,PH,PL,TR}', pg_temp.h(b, 21))
       END,
       CASE WHEN pg_temp.h(b, 22) % 100 < 20 THEN NULL ELSE date '1955-01-01' + (pg_temp.h(b, 23) % 18000)::integer END,
       CASE WHEN pg_temp.h(b, 24) % 2 = 0 THEN NULL
            ELSE 'https://cdn.freezone.example/avatars/' || md5('avatar:' || g) || '.jpg' END,
       CASE WHEN pg_temp.h(b, 25) % 100 < 60 THEN NULL
            WHEN pg_temp.h(b, 25) % 100 < 70 THEN ''
            ELSE pg_temp.pick(ARRAY['Serial entrepreneur 🚀 | e-commerce & logistics',
                                    'مستشار أعمال في دبي منذ ٢٠١٠', 'Fondatrice d''une agence de design à Dubaï.',
                                    E'Trader.\nGeneral trading, spices & textiles.', 'IT consultant – SAP, Oracle',
                                    'Основатель студии мобильной разработки', 'Food & beverage 🍽️ franchise owner'],
                              pg_temp.h(b, 26))
       END,
       pg_temp.pick('{en,en,en,ar,ar,fr,ru,hi,zh}', pg_temp.h(b, 27)),
       CASE WHEN pg_temp.h(b, 28) % 100 < 30 THEN NULL
            ELSE jsonb_build_object(
                'line1', pg_temp.pick(ARRAY['Office 1204, Jumeirah Lakes Towers', 'Villa 12, Street 4, Al Barsha',
                                            'شقة ٣٠٥، برج الخليج', 'Flat 7B, Marina Heights', '221B Baker Street'],
                                      pg_temp.h(b, 29)),
                'city', pg_temp.pick('{Dubai,Dubai,"Abu Dhabi",الشارقة,"Ras Al Khaimah",London,Mumbai}', pg_temp.h(b, 30)),
                'po_box', CASE WHEN pg_temp.h(b, 31) % 3 = 0 THEN 'null'::jsonb ELSE to_jsonb(10000 + pg_temp.h(b, 32) % 90000) END,
                'country', pg_temp.pick('{AE,AE,AE,GB,IN}', pg_temp.h(b, 30)))
       END,
       role::user_role,
       CASE role WHEN 'admin' THEN '{*}'
                 WHEN 'reviewer' THEN '{documents.read,documents.review}'
                 WHEN 'support' THEN '{users.read,users.impersonate,companies.read}'
                 WHEN 'consultant' THEN '{companies.read,companies.write,documents.read}'
                 WHEN 'shareholder' THEN '{companies.read}'
                 ELSE CASE WHEN pg_temp.h(b, 33) % 3 = 0 THEN '{}' ELSE '{companies.read,companies.write}' END
       END::text[],
       staff,
       CASE WHEN role = 'founder' AND pg_temp.h(b, 34) % 2 = 0 THEN NULL ELSE c + pg_temp.secs(pg_temp.h(b, 35) % 86400) END,
       CASE WHEN g = 1 OR NOT staff THEN NULL ELSE 1 END,
       CASE WHEN pg_temp.h(b, 36) % 100 < 40 THEN NULL ELSE 'CRM-' || (500000 + g) END,
       dl,
       c,
       greatest(c, dl) + pg_temp.secs(CASE WHEN pg_temp.h(b, 37) % 100 < 40 THEN 60 + pg_temp.h(b, 38) % 15552000 ELSE 0 END)
FROM n, pg_temp.rows(n.users) AS r,
     LATERAL (SELECT pg_temp.h(b, 40) % 20 AS f,
                     pg_temp.h(b, 41) % 12 AS fa,
                     pg_temp.h(b, 42) % 100 < 45 AS arab,
                     pg_temp.h(b, 43) % 100 < 60 AS resident,
                     pg_temp.h(b, 44) % 100 AS s,
                     pg_temp.at(pg_temp.h(b, 45)) AS c,
                     CASE WHEN g = 1 THEN 'admin' WHEN g % 50 = 7 THEN 'reviewer' WHEN g % 50 = 17 THEN 'support'
                          WHEN g % 40 = 9 THEN 'consultant' WHEN g % 6 = 2 THEN 'shareholder' ELSE 'founder'
                     END AS role) AS x,
     LATERAL (SELECT pg_temp.pick(pg_temp.ar_first_latin(), fa) AS pick_first,
                     role IN ('admin', 'reviewer', 'support', 'consultant') AS staff) AS y,
     LATERAL (SELECT CASE WHEN staff THEN 'active' WHEN s < 6 THEN 'deleted' WHEN s < 9 THEN 'suspended'
                          WHEN s < 19 THEN 'pending_verification' ELSE 'active' END AS st) AS z,
     LATERAL (SELECT CASE WHEN st = 'deleted' THEN c + pg_temp.secs(86400 + pg_temp.h(b, 46) % 31536000) END AS dl) AS w;

-- ---------------------------------------------------------------- freezone service
-- the twelve real free zones first; beyond them, numbered zones of the same authorities
INSERT INTO freezones (id, code, name, name_ar, emirate, website, established_year, created_at, updated_at)
SELECT g,
       pg_temp.pick(pg_temp.fz_codes(), i) || CASE WHEN k = 0 THEN '' ELSE '-' || (k + 1) END,
       pg_temp.pick(pg_temp.fz_names(), i) || CASE WHEN k = 0 THEN '' ELSE ' – Zone ' || (k + 1) END,
       pg_temp.pick(pg_temp.fz_names_ar(), i) || CASE WHEN k = 0 THEN '' ELSE ' ' || (k + 1) END,
       pg_temp.pick(pg_temp.fz_emirates(), i),
       CASE WHEN g % 6 = 0 THEN NULL ELSE 'https://www.' || lower(pg_temp.pick(pg_temp.fz_codes(), i)) || '.example' END,
       CASE WHEN k = 0 THEN pg_temp.pick(pg_temp.fz_years(), i)::smallint END,
       c,
       c + pg_temp.secs(CASE WHEN g % 2 = 0 THEN pg_temp.h(b, 51) % 31536000 ELSE 0 END)
FROM n, pg_temp.rows(n.freezones) AS r,
     LATERAL (SELECT (g - 1) % 12 AS i, (g - 1) / 12 AS k,
                     timestamptz '2023-01-01 00:00:00+00' + pg_temp.secs(pg_temp.h(b, 52) % 86400) AS c) AS x;

INSERT INTO license_types (id, freezone_id, code, name, activity_group, annual_fee, currency, max_visas,
                           created_at, updated_at)
SELECT g,
       1 + (g - 1) % n.freezones,
       'LT-' || g,
       pg_temp.pick(ARRAY['General Trading', 'E-commerce', 'Consultancy', 'Media & Publishing', 'Software Development',
                          'Import/Export', 'تجارة عامة', 'Holding Company', 'Freelancer Permit'], i),
       pg_temp.pick('{commercial,e-commerce,professional,media,service,commercial,commercial,service,professional}', i),
       (5000 + (pg_temp.h(b, 61) % 60) * 250 + CASE WHEN pg_temp.h(b, 62) % 4 = 0 THEN 0.5 ELSE 0 END)::numeric(12,2),
       CASE WHEN pg_temp.h(b, 63) % 10 = 0 THEN 'USD' ELSE 'AED' END,
       CASE WHEN i = 8 THEN NULL ELSE pg_temp.pick('{0,1,2,3,6,9,12}', pg_temp.h(b, 64))::smallint END,
       c,
       c + pg_temp.secs(CASE WHEN g % 3 = 0 THEN pg_temp.h(b, 65) % 31536000 ELSE 0 END)
FROM n, pg_temp.rows(n.license_types) AS r,
     LATERAL (SELECT pg_temp.h(b, 66) % 9 AS i,
                     timestamptz '2023-01-01 00:00:00+00' + pg_temp.secs(pg_temp.h(b, 67) % 604800) AS c) AS x;

INSERT INTO companies (id, owner_id, freezone_id, license_type_id, legal_name, legal_name_ar, trade_name,
                       license_number, status, activities, share_capital, shareholders, incorporated_on,
                       created_at, updated_at)
SELECT g, owner, lt.freezone_id, lt.id,
       pg_temp.pick(ARRAY['Desert Rose', 'Falcon', 'Al Noor', 'Oasis', 'Pearl', 'Müller & Partner', 'Blue Dhow',
                          'Saffron', 'Nova', 'Café Olé', 'Skyline', 'Zenith', 'Marhaba', 'Sakura'], pg_temp.h(b, 71))
           || ' ' || pg_temp.pick('{Trading,Consulting,Technologies,Media,Logistics,Foods,Holdings,Ventures}', pg_temp.h(b, 72))
           || ' ' || pg_temp.pick('{FZ-LLC,FZE,FZCO,"DMCC Branch",Ltd}', pg_temp.h(b, 73)),
       CASE WHEN pg_temp.h(b, 74) % 2 = 0 THEN NULL
            ELSE 'شركة ' || pg_temp.pick('{الوردة,الصقر,النور,الواحة,اللؤلؤة,الزعفران,الأفق}', pg_temp.h(b, 71))
                 || ' ' || pg_temp.pick('{للتجارة,للاستشارات,للتقنية,للإعلام}', pg_temp.h(b, 72))
                 || ' ' || pg_temp.pick('{م.م.ح,ش.ذ.م.م}', pg_temp.h(b, 73))
       END,
       CASE WHEN pg_temp.h(b, 75) % 100 < 30 THEN NULL
            WHEN pg_temp.h(b, 75) % 100 < 35 THEN ''
            ELSE pg_temp.pick(ARRAY['Rose Trading', 'Falcon Tech 🦅', 'NoorMedia', 'Oasis Eats', 'Pearl & Co',
                                    'ساف كونسلت'], pg_temp.h(b, 76))
       END,
       CASE WHEN st IN ('approved', 'licensed') THEN fz.code || '-' || (100000 + g) END,
       st::company_status,
       CASE WHEN st = 'draft' AND pg_temp.h(b, 77) % 2 = 0 THEN '{}'::text[]
            ELSE (ARRAY[pg_temp.pick('{"General Trading","IT Consultancy",E-commerce,"تجارة عامة"}', pg_temp.h(b, 78)),
                        pg_temp.pick('{"Management Consultancy","Marketing Services","Software House",Événementiel}', pg_temp.h(b, 79)),
                        pg_temp.pick('{"Import & Export","Event Management","Food Trading"}', pg_temp.h(b, 80))])[1:1 + pg_temp.h(b, 81) % 3]
       END,
       CASE WHEN st = 'draft' AND pg_temp.h(b, 82) % 100 < 60 THEN NULL
            ELSE CASE WHEN pg_temp.h(b, 83) % 20 = 0 THEN ' ' ELSE '' END
                 || ((10 + pg_temp.h(b, 84) % 990) * 1000)::text
                 || pg_temp.pick('{"",.00,.50}', pg_temp.h(b, 85))
                 || CASE WHEN pg_temp.h(b, 83) % 20 = 0 THEN ' ' ELSE '' END
       END,
       CASE WHEN st = 'draft' THEN '[]'::jsonb
            WHEN pg_temp.h(b, 86) % 3 = 0
            THEN jsonb_build_array(jsonb_build_object('user_id', owner, 'share_pct', 100, 'role', 'manager'))
            WHEN pg_temp.h(b, 86) % 3 = 1
            THEN jsonb_build_array(jsonb_build_object('user_id', owner, 'share_pct', 60, 'role', 'manager'),
                                   jsonb_build_object('user_id', 1 + pg_temp.h(b, 87) % n.users, 'share_pct', 40,
                                                      'role', 'shareholder'))
            ELSE jsonb_build_array(jsonb_build_object('user_id', owner, 'share_pct', 51, 'role', 'director'),
                                   jsonb_build_object('user_id', 1 + pg_temp.h(b, 87) % n.users, 'share_pct', 24.5),
                                   jsonb_build_object('name', 'Gulf Holding Ltd (corporate)', 'share_pct', 24.5,
                                                      'user_id', NULL))
       END,
       CASE WHEN st = 'licensed' THEN (c AT TIME ZONE 'UTC')::date + (7 + pg_temp.h(b, 88) % 60)::integer END,
       c,
       c + pg_temp.secs(CASE WHEN st = 'draft' AND pg_temp.h(b, 89) % 2 = 0 THEN 0
                             ELSE 3600 + pg_temp.h(b, 90) % 7776000 END)
FROM n
     CROSS JOIN pg_temp.rows(n.companies) AS r
     JOIN license_types AS lt ON lt.id = 1 + pg_temp.h(b, 91) % n.license_types
     JOIN freezones AS fz ON fz.id = lt.freezone_id
     CROSS JOIN LATERAL (SELECT 1 + pg_temp.h(b, 92) % n.users AS owner,
                                pg_temp.h(b, 93) % 100 AS s,
                                pg_temp.at(pg_temp.h(b, 94)) AS c) AS x
     CROSS JOIN LATERAL (SELECT CASE WHEN s < 15 THEN 'draft' WHEN s < 25 THEN 'submitted' WHEN s < 35 THEN 'under_review'
                                     WHEN s < 45 THEN 'approved' WHEN s < 85 THEN 'licensed' WHEN s < 93 THEN 'rejected'
                                     ELSE 'cancelled' END AS st) AS y;

INSERT INTO setup_applications (id, company_id, applicant_id, stage, fee_total, fee_paid, answers, submitted_at,
                                created_at, updated_at)
SELECT g, co.id,
       CASE WHEN pg_temp.h(b, 101) % 100 < 20 THEN pg_temp.consultant(pg_temp.h(b, 102), n.users) ELSE co.owner_id END,
       stage,
       total,
       CASE WHEN stage IN ('initial_approval', 'name_reservation') THEN 0
            WHEN stage = 'payment' THEN round(total * (pg_temp.h(b, 103) % 101) / 100, 2)
            ELSE total END,
       CASE WHEN pg_temp.h(b, 104) % 100 < 20 THEN NULL
            ELSE jsonb_build_object(
                'activity_description', pg_temp.pick(ARRAY['Trading of spices and dry food', 'استشارات إدارية',
                                                           'Développement d''applications mobiles', 'Online store 🛒',
                                                           'Event management & weddings'], pg_temp.h(b, 105)),
                'visas_requested', pg_temp.h(b, 106) % 7,
                'office', pg_temp.pick('{flexi-desk,"dedicated office",warehouse}', pg_temp.h(b, 107)),
                'previous_rejection', CASE WHEN pg_temp.h(b, 108) % 4 = 0 THEN 'null'::jsonb
                                           ELSE to_jsonb(pg_temp.h(b, 108) % 9 = 1) END)
       END,
       sub,
       ca,
       greatest(ca, sub) + pg_temp.secs(CASE WHEN pg_temp.h(b, 109) % 100 < 50 THEN pg_temp.h(b, 110) % 2592000 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.setup_applications) AS r
     JOIN companies AS co ON co.id = 1 + pg_temp.h(b, 111) % n.companies
     JOIN license_types AS lt ON lt.id = co.license_type_id
     CROSS JOIN LATERAL (SELECT pg_temp.pick('{initial_approval,name_reservation,documents,documents,payment,'
                                             'license_issued,visa}', pg_temp.h(b, 112)) AS stage,
                                lt.annual_fee + pg_temp.pick('{0,1500,2750.50,4000}', pg_temp.h(b, 113))::numeric AS total,
                                co.created_at + pg_temp.secs(pg_temp.h(b, 114) % 604800) AS ca) AS x
     CROSS JOIN LATERAL (SELECT CASE WHEN stage = 'initial_approval' AND pg_temp.h(b, 115) % 2 = 0 THEN NULL
                                     ELSE ca + pg_temp.secs(3600 + pg_temp.h(b, 116) % 1209600) END AS sub) AS y;

-- ---------------------------------------------------------------- document service
INSERT INTO documents (id, user_id, company_id, doc_type, status, file_name, mime_type, size_bytes, storage_key,
                       issued_on, expires_on, ocr_text, metadata, created_at, updated_at)
SELECT g,
       1 + pg_temp.h(b, 121) % n.users,
       CASE WHEN pg_temp.h(b, 122) % 100 < 40 THEN NULL ELSE 1 + pg_temp.h(b, 123) % n.companies END,
       dt::document_type,
       pg_temp.pick('{uploaded,processing,verified,verified,verified,rejected,expired}', pg_temp.h(b, 124))::document_status,
       pg_temp.pick(ARRAY['scan', 'جواز السفر', 'Passport copy', 'Emirates ID (front+back)', 'Trade Licence',
                          'MOA signed', 'كشف حساب بنكي', 'photo 📷', 'NOC – employer', 'Dokument'], pg_temp.h(b, 125))
           || '_' || g || '.' || ext,
       CASE ext WHEN 'jpg' THEN 'image/jpeg' WHEN 'png' THEN 'image/png' WHEN 'heic' THEN 'image/heic'
                ELSE 'application/pdf' END,
       CASE WHEN pg_temp.h(b, 126) % 200 = 0 THEN 0 ELSE 20000 + pg_temp.h(b, 127) % 15000000 END,
       md5('freezone-document:' || g)::uuid,
       iss,
       CASE dt WHEN 'passport' THEN iss + 3652 WHEN 'emirates_id' THEN iss + 1826 WHEN 'visa' THEN iss + 730
               WHEN 'trade_license' THEN iss + 365 END,
       CASE WHEN pg_temp.h(b, 128) % 100 < 40 THEN NULL
            WHEN pg_temp.h(b, 128) % 100 < 45 THEN ''
            ELSE pg_temp.pick(ARRAY[E'الاسم: محمد العلي\nرقم الهوية: 784-1985-1234567-1',
                                    E'PASSPORT\nREPUBLIC OF INDIA\nP<INDSHARMA<<PRIYA<<<<<<<<<<<<<<<<<<<<<<<<',
                                    E'TRADE LICENCE رخصة تجارية\nLicense No. DMCC-123456',
                                    'Bank statement – Emirates NBD – AED 125,000.00',
                                    'No Objection Certificate / شهادة عدم ممانعة',
                                    'Lorem ipsum ﷽ (unreadable scan)'], pg_temp.h(b, 129))
       END,
       CASE WHEN pg_temp.h(b, 130) % 100 < 25 THEN '{}'::jsonb
            ELSE jsonb_build_object(
                'pages', 1 + pg_temp.h(b, 131) % 12,
                'source', pg_temp.pick('{upload,email,whatsapp,api}', pg_temp.h(b, 132)),
                'ocr', CASE WHEN pg_temp.h(b, 133) % 4 = 0 THEN 'null'::jsonb
                            ELSE jsonb_build_object('engine', 'tesseract 5.3',
                                                    'confidence', ((700 + pg_temp.h(b, 134) % 300) / 1000.0)::numeric(4,3),
                                                    'languages', '["eng", "ara"]'::jsonb) END)
       END,
       c,
       c + pg_temp.secs(CASE WHEN pg_temp.h(b, 135) % 100 < 60 THEN 60 + pg_temp.h(b, 136) % 2592000 ELSE 0 END)
FROM n, pg_temp.rows(n.documents) AS r,
     LATERAL (SELECT pg_temp.pick('{passport,passport,emirates_id,visa,photo,trade_license,moa,bank_statement,noc,other}',
                                  pg_temp.h(b, 137)) AS dt,
                     pg_temp.at(pg_temp.h(b, 138)) AS c) AS x,
     LATERAL (SELECT CASE WHEN dt = 'photo' THEN pg_temp.pick('{jpg,jpg,png,heic}', pg_temp.h(b, 139))
                          ELSE pg_temp.pick('{pdf,pdf,pdf,jpg}', pg_temp.h(b, 139)) END AS ext,
                     CASE WHEN dt IN ('passport', 'emirates_id', 'visa', 'trade_license')
                          THEN date '2015-01-01' + (pg_temp.h(b, 140) % 3600)::integer END AS iss) AS y;

INSERT INTO document_reviews (id, document_id, reviewer_id, decision, reasons, notes, reviewed_at, updated_at)
SELECT g, d.id, pg_temp.reviewer(pg_temp.h(b, 141), n.users), dec,
       CASE WHEN dec = 'approved' THEN NULL
            ELSE (ARRAY[pg_temp.pick('{blurry,expired,"name mismatch","missing page","غير واضح","wrong document"}', pg_temp.h(b, 142)),
                        pg_temp.pick('{"glare on photo","cropped edges","signature missing"}', pg_temp.h(b, 143))])[1:1 + pg_temp.h(b, 144) % 2]
       END,
       CASE WHEN pg_temp.h(b, 145) % 100 < 50 THEN NULL
            WHEN pg_temp.h(b, 145) % 100 < 60 THEN ''
            ELSE pg_temp.pick(ARRAY['OK ✔', 'Please upload the back side too.', 'يرجى تحميل نسخة أوضح',
                                    'Name differs from passport (Mohammed vs Muhammad).', 'Expired last month.'],
                              pg_temp.h(b, 146))
       END,
       rv,
       rv + pg_temp.secs(CASE WHEN pg_temp.h(b, 147) % 100 < 10 THEN 60 + pg_temp.h(b, 148) % 86400 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.document_reviews) AS r
     JOIN documents AS d ON d.id = 1 + pg_temp.h(b, 149) % n.documents
     CROSS JOIN LATERAL (SELECT pg_temp.pick('{approved,approved,approved,rejected,needs_info}', pg_temp.h(b, 150)) AS dec,
                                d.created_at + pg_temp.secs(600 + pg_temp.h(b, 151) % 604800) AS rv) AS x;

-- ---------------------------------------------------------------- ai_research service
INSERT INTO research_queries (id, user_id, freezone_id, prompt, language, model, status, tokens_in, tokens_out,
                              cost_usd, parameters, created_at, completed_at, updated_at)
SELECT g,
       1 + pg_temp.h(b, 161) % n.users,
       CASE WHEN pg_temp.h(b, 162) % 100 < 30 THEN NULL ELSE 1 + pg_temp.h(b, 163) % n.freezones END,
       pg_temp.pick(ARRAY['What are the visa quotas for a flexi-desk in DMCC?',
                          'ما هي تكلفة رخصة تجارية في رأس الخيمة؟',
                          'Quelle zone franche choisir pour une activité e-commerce ?',
                          'Compare IFZA vs Meydan for a consultancy 🤔',
                          'Какие документы нужны для открытия компании в ОАЭ?',
                          'सबसे सस्ता फ्री ज़ोन कौन सा है?',
                          E'List all fees for:\n- license\n- establishment card\n- 2 visas',
                          'Can a freezone company trade on the mainland?'], pi),
       pg_temp.pick('{en,ar,fr,en,ru,hi,en,en}', pi),
       pg_temp.pick('{gpt-4o-2024-08-06,claude-3-5-sonnet,llama-3.1-70b-instruct,mistral-large-2407}', pg_temp.h(b, 164)),
       st,
       tin,
       tout,
       CASE WHEN tin IS NOT NULL THEN round(tin * 0.000003 + coalesce(tout, 0) * 0.000015, 6) END,
       pg_temp.pickj(ARRAY['{"temperature": 0.2, "max_tokens": 2048, "tools": ["web_search"]}',
                           '{"temperature": 0, "max_tokens": 4096, "tools": [], "system": "Answer in the user''s language."}',
                           '{"temperature": 0.7, "top_p": 0.95, "max_tokens": 1024, "tools": ["web_search", "fee_calculator"]}',
                           '{"temperature": 0.2, "max_tokens": null, "stream": true}']::jsonb[], pg_temp.h(b, 165)),
       c,
       done,
       coalesce(done, c)
FROM n, pg_temp.rows(n.research_queries) AS r,
     LATERAL (SELECT pg_temp.h(b, 166) % 8 AS pi, pg_temp.h(b, 167) % 100 AS s, pg_temp.at(pg_temp.h(b, 168)) AS c) AS x,
     LATERAL (SELECT CASE WHEN s < 75 THEN 'completed' WHEN s < 83 THEN 'failed' WHEN s < 88 THEN 'running'
                          ELSE 'queued' END AS st) AS y,
     LATERAL (SELECT CASE WHEN st = 'queued' THEN NULL ELSE (20 + pg_temp.h(b, 169) % 4000)::integer END AS tin,
                     CASE WHEN st = 'completed' THEN (50 + pg_temp.h(b, 170) % 3000)::integer END AS tout,
                     CASE WHEN st IN ('completed', 'failed') THEN c + pg_temp.secs(2 + pg_temp.h(b, 171) % 120) END AS done) AS z;

INSERT INTO research_answers (id, query_id, answer, citations, confidence, feedback, created_at, updated_at)
SELECT g, q.id,
       pg_temp.pick(ARRAY[E'## Summary\nDMCC allows up to **3 visas** per flexi-desk.\n\n| Item | AED |\n|---|---|\n| License | 20,000 |',
                          E'تبلغ تكلفة الرخصة التجارية حوالي ١٥٬٠٠٠ درهم سنوياً.',
                          'Pour l''e-commerce, IFZA et Meydan proposent des licences à partir de 12 900 AED.',
                          'Yes, through a mainland distributor or a dual licence. ✅',
                          'I could not find an official source for this.',
                          ''], pg_temp.h(b, 181)),
       CASE WHEN pg_temp.h(b, 182) % 4 = 0 THEN '[]'::jsonb
            ELSE pg_temp.pickj(ARRAY['[{"url": "https://www.dmcc.example/fees", "title": "DMCC fees 2024"}]',
                                     '[{"url": "https://u.ae/en/information-and-services/business", "title": "UAE portal"}, {"url": "https://www.rakez.example/ar/الرسوم", "title": "الرسوم", "accessed": "2024-05-01"}]',
                                     '[{"url": null, "title": "internal knowledge base", "page": 12}]']::jsonb[],
                               pg_temp.h(b, 183))
       END,
       CASE WHEN pg_temp.h(b, 184) % 100 < 20 THEN NULL ELSE ((pg_temp.h(b, 185) % 1001) / 1000.0)::numeric(4,3) END,
       CASE WHEN pg_temp.h(b, 186) % 100 < 70 THEN NULL WHEN pg_temp.h(b, 186) % 2 = 0 THEN 1 ELSE -1 END,
       a,
       a + pg_temp.secs(CASE WHEN pg_temp.h(b, 187) % 100 < 15 THEN 60 + pg_temp.h(b, 188) % 86400 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.research_answers) AS r
     JOIN research_queries AS q ON q.id = 1 + pg_temp.h(b, 189) % n.research_queries
     CROSS JOIN LATERAL (SELECT coalesce(q.completed_at, q.created_at) + pg_temp.secs(1 + pg_temp.h(b, 190) % 30) AS a) AS x;

-- ---------------------------------------------------------------- scraper service
INSERT INTO scrape_sources (id, freezone_id, url, kind, schedule, selectors, is_enabled, last_run_at, created_at,
                            updated_at)
SELECT g, fz.id,
       CASE WHEN fz.id IS NULL
            THEN pg_temp.pick('{https://u.ae/en/information-and-services/business,https://www.economy.example/free-zones,'
                              'https://news.example/business/uae}', pg_temp.h(b, 201))
            ELSE 'https://www.' || lower(fz.code) || '.example/'
                 || pg_temp.pick('{fees,licenses,visas,news,faq,ar/الرسوم}', pg_temp.h(b, 202))
       END || '?src=' || g,
       kind,
       pg_temp.pick('{0 * * * *,*/15 * * * *,0 3 * * 1,@daily}', pg_temp.h(b, 203)),
       CASE WHEN kind IN ('rss', 'api') THEN NULL
            ELSE jsonb_build_object('title', 'h1', 'fees', 'table.fees tr',
                                    'next', CASE WHEN pg_temp.h(b, 204) % 2 = 0 THEN 'null'::jsonb ELSE '"a.next"'::jsonb END)
       END,
       pg_temp.h(b, 205) % 100 >= 15,
       CASE WHEN pg_temp.h(b, 206) % 100 < 10 THEN NULL ELSE c + pg_temp.secs(86400 + pg_temp.h(b, 207) % 31536000) END,
       c,
       c + pg_temp.secs(CASE WHEN g % 2 = 0 THEN pg_temp.h(b, 208) % 31536000 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.scrape_sources) AS r
     CROSS JOIN LATERAL (SELECT CASE WHEN pg_temp.h(b, 209) % 100 < 20 THEN NULL ELSE 1 + (g - 1) % n.freezones END AS fid,
                                pg_temp.pick('{html,html,html,pdf,rss,api}', pg_temp.h(b, 210)) AS kind,
                                timestamptz '2023-01-01 00:00:00+00' + pg_temp.secs(pg_temp.h(b, 211) % 2592000) AS c) AS x
     LEFT JOIN freezones AS fz ON fz.id = x.fid;

INSERT INTO scraped_pages (id, source_id, url, http_status, content_hash, title, language, extracted, fetched_at,
                           updated_at)
SELECT g, ss.id,
       ss.url || '&page=' || (1 + pg_temp.h(b, 221) % 50),
       hs,
       CASE WHEN hs IS NOT NULL THEN sha256(convert_to('page:' || g, 'UTF8')) END,
       CASE WHEN hs = 200 AND pg_temp.h(b, 222) % 10 > 0
            THEN pg_temp.pick(ARRAY['Fees & Packages', 'الرسوم والباقات', 'Business Licence Types',
                                    'Company Setup in DMCC 🚀', 'Visa Allocation FAQ', 'Tarifs 2024', ''], pg_temp.h(b, 223))
       END,
       CASE WHEN hs = 200 THEN pg_temp.pick('{en,en,ar,fr}', pg_temp.h(b, 224)) END,
       CASE WHEN hs IS DISTINCT FROM 200 THEN NULL
            ELSE jsonb_build_object(
                'fees', CASE WHEN pg_temp.h(b, 225) % 3 = 0 THEN '[]'::jsonb
                             ELSE jsonb_build_array(
                                 jsonb_build_object('name', 'License', 'amount', 5000 + pg_temp.h(b, 226) % 40 * 250 + 0.5,
                                                    'currency', 'AED'),
                                 jsonb_build_object('name', 'بطاقة المنشأة', 'amount', 2000, 'currency', 'AED')) END,
                'updated', to_char(date '2023-01-01' + (pg_temp.h(b, 227) % 700)::integer, 'YYYY-MM-DD'),
                'links', pg_temp.h(b, 228) % 200,
                'warnings', CASE WHEN pg_temp.h(b, 229) % 5 = 0 THEN '["selector .fees not found"]'::jsonb
                                 ELSE 'null'::jsonb END)
       END,
       t,
       t + pg_temp.secs(CASE WHEN pg_temp.h(b, 230) % 100 < 5 THEN 1 + pg_temp.h(b, 231) % 3600 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.scraped_pages) AS r
     JOIN scrape_sources AS ss ON ss.id = 1 + pg_temp.h(b, 232) % n.scrape_sources
     CROSS JOIN LATERAL (SELECT CASE WHEN pg_temp.h(b, 233) % 100 < 5 THEN NULL
                                     ELSE pg_temp.pick('{200,200,200,200,200,200,301,304,403,404,500,503}',
                                                       pg_temp.h(b, 234))::smallint END AS hs,
                                pg_temp.at(pg_temp.h(b, 235)) AS t) AS x;

-- ---------------------------------------------------------------- identity sequences continue after the data
DO $$
DECLARE
    col record;
BEGIN
    FOR col IN
        SELECT c.table_name, c.column_name
        FROM information_schema.columns AS c
        WHERE c.table_schema = current_schema() AND c.is_identity = 'YES'
    LOOP
        EXECUTE format('SELECT setval(pg_get_serial_sequence(%L, %L), coalesce(max(%I), 0) + 1, false) FROM %I',
                       quote_ident(col.table_name), col.column_name, col.column_name, col.table_name);
    END LOOP;
END
$$;
