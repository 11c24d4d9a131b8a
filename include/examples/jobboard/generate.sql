-- jobboard: deterministic data generator, run after schema.sql and before constraints.sql.
--
-- Row counts come from the custom settings dbsplit.<table> (set by dbsplit.samples with set_config).
-- Every value derives from the row number g: pg_temp.rows() pairs it with a mixed value b, and
-- pg_temp.h(b, k) draws stream k from b. Integer arithmetic only: no random(), now() or hashtext(), so
-- the same counts give the same bytes on every PostgreSQL version. Timestamps lie in 2023-01-01 ..
-- 2024-12-31 UTC (plus later updates); the session runs with TimeZone UTC.

-- ---------------------------------------------------------------- helpers (session-local)
-- pg_temp.rows, h, pick, pickj, at and secs: ../generate_helpers.sql, run just before this script

CREATE FUNCTION pg_temp.first_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'José', 'Zoë', 'María', 'Jürgen', 'Anaïs', 'Søren', 'Łukasz', 'Chloé', 'Ömer', 'Ingrid',
    'Björn', 'Émilie', 'Nuño', 'Siobhán', 'Dvořák', 'Amélie', 'Oscar', 'Aisha', 'Liam', 'Noah',
    'Emma', 'Olivia', 'Mateo', 'Sofía', 'Hannah', 'Kenji', 'Priya', 'Ngozi', 'Tomás', 'Fatimah',
    'Ana', 'Jonas', 'Mia', 'Lucas', 'Léa', 'Ahmed', 'Elena', 'Ravi', 'Grace', 'Dmitri'] $$;

-- the ASCII spelling of first_names, same order, for e-mail addresses
CREATE FUNCTION pg_temp.first_slugs() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'jose', 'zoe', 'maria', 'juergen', 'anais', 'soeren', 'lukasz', 'chloe', 'oemer', 'ingrid',
    'bjoern', 'emilie', 'nuno', 'siobhan', 'dvorak', 'amelie', 'oscar', 'aisha', 'liam', 'noah',
    'emma', 'olivia', 'mateo', 'sofia', 'hannah', 'kenji', 'priya', 'ngozi', 'tomas', 'fatimah',
    'ana', 'jonas', 'mia', 'lucas', 'lea', 'ahmed', 'elena', 'ravi', 'grace', 'dmitri'] $$;

CREATE FUNCTION pg_temp.last_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Núñez', 'Ångström', 'Müller', 'García', 'Kowalski', 'Ødegaard', 'Lefèvre', 'O''Brien',
    'Smith', 'Johnson', 'Yılmaz', 'Schröder', 'Fernández', 'Nguyễn', 'Novák', 'Dubois',
    'Rossi', 'Silva', 'Jensen', 'Patel', 'Okafor', 'Kim', 'Tanaka', 'Ivanova', 'Brown',
    'Peña', 'Gonçalves', 'Çelik', 'Håkansson', 'Van der Berg', 'da Costa', 'Mäkinen'] $$;

-- names written without a space between family and given name
CREATE FUNCTION pg_temp.cjk_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    '李小龙', '王芳', '张伟', '山田太郎', '佐藤花子', '김민준', '이서연', '陳美玲', '鈴木一郎', '박지훈'] $$;

CREATE FUNCTION pg_temp.cities() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Berlin', 'München', 'Zürich', 'São Paulo', 'Kraków', 'Malmö', 'Reykjavík', 'Córdoba',
    'Montréal', '東京', '서울', 'Madrid', 'London', 'New York', 'Austin', 'Lisboa', 'Wien',
    'Genève', 'København', 'İstanbul', 'Amsterdam', 'Barcelona', 'Paris', 'Toronto'] $$;

CREATE FUNCTION pg_temp.skill_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Python', 'SQL', 'PostgreSQL', 'Java', 'Kotlin', 'Go', 'Rust', 'TypeScript', 'React', 'Vue.js',
    'Kubernetes', 'Docker', 'Terraform', 'AWS', 'Google Cloud', 'Azure', 'Airflow', 'Spark', 'dbt',
    'Machine Learning', 'Statistics', 'Figma', 'UX Research', 'Copywriting', 'SEO', 'Sales',
    'Negotiation', 'Accounting', 'Excel', 'Project Management', 'Scrum', 'Customer Support',
    'Español', 'Deutsch', 'Français', '日本語', '中文', 'Português', 'Barista ☕', 'Pâtisserie',
    'C++', 'C#', '.NET', 'Swift', 'Android', 'GraphQL', 'Linux', 'Bash', 'Networking', 'Security'] $$;

CREATE FUNCTION pg_temp.skill_slugs() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'python', 'sql', 'postgresql', 'java', 'kotlin', 'go', 'rust', 'typescript', 'react', 'vuejs',
    'kubernetes', 'docker', 'terraform', 'aws', 'google-cloud', 'azure', 'airflow', 'spark', 'dbt',
    'machine-learning', 'statistics', 'figma', 'ux-research', 'copywriting', 'seo', 'sales',
    'negotiation', 'accounting', 'excel', 'project-management', 'scrum', 'customer-support',
    'spanish', 'german', 'french', 'japanese', 'chinese', 'portuguese', 'barista', 'patisserie',
    'cpp', 'csharp', 'dotnet', 'swift', 'android', 'graphql', 'linux', 'bash', 'networking', 'security'] $$;

-- device profiles of the analytics events, prebuilt (building nested jsonb per row is slow)
CREATE FUNCTION pg_temp.devices() RETURNS jsonb[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    '{"type": "desktop", "os": "Windows", "screen": {"w": 1920, "h": 1080}}',
    '{"type": "desktop", "os": "macOS", "screen": {"w": 1440, "h": 900}}',
    '{"type": "desktop", "os": "Linux", "screen": {"w": 2560, "h": 1440}, "browser": {"name": "Firefox", "version": 128}}',
    '{"type": "mobile", "os": "iOS", "screen": {"w": 390, "h": 844}}',
    '{"type": "mobile", "os": "Android", "screen": {"w": 412, "h": 915}, "dark_mode": true}',
    '{"type": "mobile", "os": "Android", "screen": {"w": 360, "h": 800}}',
    '{"type": "tablet", "os": "iPadOS", "screen": {"w": 820, "h": 1180}}',
    '{"type": "desktop", "os": "Windows", "screen": {"w": 1366, "h": 768}, "languages": ["de-DE", "en"]}']::jsonb[] $$;

CREATE FUNCTION pg_temp.queries() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'python developer', 'remote data engineer', 'Entwickler München', 'diseñador UX', 'データサイエンティスト',
    'barista ☕', 'product manager 🚀', 'postgresql dba', 'stage marketing Paris', 'enfermería Córdoba',
    'frontend react', 'kubernetes sre', 'Buchhalter Teilzeit', 'développeur·se backend', '前端工程师',
    'sales manager nordics', 'devops', 'junior analyst', 'head of growth', 'rust 🦀'] $$;

CREATE FUNCTION pg_temp.companies_a() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Nordlys', 'Müller & Söhne', 'Acme', 'Globex', 'Initech', 'Café Olé', 'Sakura', 'Blåbær',
    'Zenith', 'Łódź Digital', 'Pixel', 'Orbital', 'Cumbre', 'Vértice', 'Kaiju', 'Tundra',
    'Helios', 'Brisa', 'Fjord', 'Quantum'] $$;

CREATE FUNCTION pg_temp.companies_b() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Labs', 'GmbH', 'S.A.', 'AB', 'Ltd', 'Inc.', 'Technologies', 'Studio', 'Logística', 'Systems',
    '株式会社', 'Analytics', 'Partners', 'Health', 'Foods'] $$;

-- ---------------------------------------------------------------- counts
CREATE TEMP TABLE n ON COMMIT DROP AS SELECT
    current_setting('dbsplit.users')::bigint                    AS users,
    current_setting('dbsplit.user_skills')::bigint              AS user_skills,
    current_setting('dbsplit.companies')::bigint                AS companies,
    current_setting('dbsplit.job_categories')::bigint           AS job_categories,
    current_setting('dbsplit.skills')::bigint                   AS skills,
    current_setting('dbsplit.jobs')::bigint                     AS jobs,
    current_setting('dbsplit.job_skills')::bigint               AS job_skills,
    current_setting('dbsplit.applications')::bigint             AS applications,
    current_setting('dbsplit.application_attachments')::bigint  AS application_attachments,
    current_setting('dbsplit.interviews')::bigint               AS interviews,
    current_setting('dbsplit.search_history')::bigint           AS search_history,
    current_setting('dbsplit.saved_searches')::bigint           AS saved_searches,
    current_setting('dbsplit.notification_templates')::bigint   AS notification_templates,
    current_setting('dbsplit.notifications')::bigint            AS notifications,
    current_setting('dbsplit.notification_preferences')::bigint AS notification_preferences,
    current_setting('dbsplit.analytics_events')::bigint         AS analytics_events;
ANALYZE n;

-- the link tables and notification_preferences derive distinct keys only within these bounds
DO $$
BEGIN
    IF EXISTS (SELECT FROM n WHERE user_skills > users * skills OR job_skills > jobs * skills
                                OR applications > users * jobs OR notification_preferences > users) THEN
        RAISE EXCEPTION 'jobboard counts out of bounds: %', (SELECT row_to_json(n) FROM n);
    END IF;
END
$$;

-- ---------------------------------------------------------------- users service
INSERT INTO users (id, public_id, email, full_name, locale, phone, birth_date, is_active, settings,
                   created_at, updated_at)
SELECT g,
       md5('user:' || g)::uuid,
       pg_temp.pick(pg_temp.first_slugs(), f) || '.' || g || '@'
           || pg_temp.pick('{example.com,mail.example,correo.example,posteo.example}', pg_temp.h(b, 1)),
       CASE WHEN pg_temp.h(b, 2) % 100 < 8 THEN pg_temp.pick(pg_temp.cjk_names(), pg_temp.h(b, 3))
            ELSE pg_temp.pick(pg_temp.first_names(), f) || ' ' || pg_temp.pick(pg_temp.last_names(), pg_temp.h(b, 4))
       END,
       pg_temp.pick('{en-US,en-GB,es-ES,de-DE,fr-FR,pt-BR,sv-SE,ja-JP,zh-CN,ko-KR}', pg_temp.h(b, 5)),
       CASE WHEN pg_temp.h(b, 6) % 100 < 22 THEN NULL
            ELSE '+' || (1 + pg_temp.h(b, 7) % 89) || ' ' || lpad((pg_temp.h(b, 8) % 1000000000)::text, 9, '0')
       END,
       CASE WHEN pg_temp.h(b, 9) % 100 < 30 THEN NULL
            ELSE date '1960-01-01' + (pg_temp.h(b, 10) % 16000)::integer
       END,
       pg_temp.h(b, 11) % 100 >= 6,
       jsonb_build_object(
           'theme', pg_temp.pick('{light,dark,system}', pg_temp.h(b, 12)),
           'timezone', pg_temp.pick('{Europe/Madrid,Europe/Berlin,America/New_York,Asia/Tokyo,UTC}', pg_temp.h(b, 13)),
           'notifications', jsonb_build_object('email', pg_temp.h(b, 14) % 4 > 0, 'push', pg_temp.h(b, 15) % 2 = 0),
           'languages', CASE WHEN pg_temp.h(b, 16) % 3 = 0 THEN '["en"]'::jsonb ELSE '["en", "es", "de"]'::jsonb END,
           'onboarding', CASE WHEN pg_temp.h(b, 17) % 5 = 0 THEN NULL
                              ELSE jsonb_build_object('step', pg_temp.h(b, 17) % 6, 'completed', pg_temp.h(b, 17) % 6 = 5)
                         END),
       c,
       c + pg_temp.secs(CASE WHEN pg_temp.h(b, 18) % 100 < 35 THEN 60 + pg_temp.h(b, 19) % 15552000 ELSE 0 END)
FROM n, pg_temp.rows(n.users) AS r,
     LATERAL (SELECT pg_temp.h(b, 0) % 40 AS f, pg_temp.at(pg_temp.h(b, 20)) AS c) AS x;

-- ---------------------------------------------------------------- jobs service
INSERT INTO companies (id, name, slug, website, country_code, founded_on, employee_count, is_verified,
                       description, created_at, updated_at)
SELECT g,
       pg_temp.pick(pg_temp.companies_a(), g) || ' ' || pg_temp.pick(pg_temp.companies_b(), g / 20),
       'company-' || g,
       CASE WHEN pg_temp.h(b, 31) % 100 < 15 THEN NULL ELSE 'https://company-' || g || '.example' END,
       pg_temp.pick('{DE,ES,FR,SE,GB,US,BR,JP,PL,CH,NL,PT}', pg_temp.h(b, 32)),
       CASE WHEN pg_temp.h(b, 33) % 100 < 20 THEN NULL ELSE date '1950-01-01' + (pg_temp.h(b, 34) % 27000)::integer END,
       CASE WHEN pg_temp.h(b, 35) % 100 < 10 THEN NULL
            ELSE (1 + (pg_temp.h(b, 36) % 300) * (pg_temp.h(b, 37) % 60))::integer
       END,
       pg_temp.h(b, 38) % 3 = 0,
       CASE WHEN pg_temp.h(b, 39) % 100 < 10 THEN NULL
            WHEN pg_temp.h(b, 39) % 100 < 20 THEN ''
            ELSE pg_temp.pick(ARRAY[
                'We build software for logistics across Europe.',
                'Wir entwickeln nachhaltige Lösungen für die Energiewende.',
                'Somos una empresa líder en comercio electrónico en Latinoamérica.',
                'Nous créons des expériences numériques élégantes. ✨',
                '私たちは東京を拠点とするフィンテック企業です。',
                'Family-run café chain since 1987 ☕',
                E'Remote-first company.\nWe value async work & deep focus.'], pg_temp.h(b, 40))
       END,
       c,
       c + pg_temp.secs(CASE WHEN pg_temp.h(b, 41) % 100 < 50 THEN pg_temp.h(b, 42) % 31536000 ELSE 0 END)
FROM n, pg_temp.rows(n.companies) AS r,
     LATERAL (SELECT pg_temp.at(pg_temp.h(b, 43)) AS c) AS x;

-- the first quarter are top-level categories, the rest hang below them (a self-referencing table)
INSERT INTO job_categories (id, parent_id, name, slug, updated_at)
SELECT g,
       CASE WHEN g <= top THEN NULL ELSE 1 + (g - 1) % top END,
       CASE WHEN g <= top
            THEN pg_temp.pick(ARRAY['Engineering', 'Design', 'Product', 'Sales', 'Marketing', 'Customer Success',
                                    'Finance', 'Human Resources', 'Operations', 'Data & Analytics',
                                    'Santé / Healthcare', 'Gastronomía & Hospitality'], g - 1)
            ELSE pg_temp.pick(ARRAY['Backend', 'Frontend', 'Mobile', 'Infrastructure', 'Security', 'UX/UI',
                                    'Account Executive', 'Growth', 'Contrôle de gestion', 'Recruiting',
                                    'Logistik', 'Pflege', 'Cocina', 'Business Intelligence'], g)
       END,
       'category-' || g,
       timestamptz '2023-01-01 00:00:00+00' + pg_temp.secs(pg_temp.h(b, 51) % 31536000)
FROM n, pg_temp.rows(n.job_categories) AS r,
     LATERAL (SELECT greatest(1, n.job_categories / 4) AS top) AS x;

INSERT INTO skills (id, name, slug, created_at, updated_at)
SELECT g,
       pg_temp.pick(pg_temp.skill_names(), g - 1) || CASE WHEN r = 0 THEN '' ELSE ' #' || (r + 1) END,
       pg_temp.pick(pg_temp.skill_slugs(), g - 1) || CASE WHEN r = 0 THEN '' ELSE '-' || (r + 1) END,
       c,
       c + pg_temp.secs(CASE WHEN g % 4 = 0 THEN pg_temp.h(b, 61) % 31536000 ELSE 0 END)
FROM n, pg_temp.rows(n.skills) AS r,
     LATERAL (SELECT (g - 1) / cardinality(pg_temp.skill_names()) AS r,
                     timestamptz '2023-01-01 00:00:00+00' + pg_temp.secs(pg_temp.h(b, 62) % 86400) AS c) AS x;

INSERT INTO jobs (id, company_id, category_id, title, description, status, employment_type, is_remote, location,
                  salary_min, salary_max, salary_currency, tags, expires_on, posted_at, updated_at)
SELECT g,
       1 + pg_temp.h(b, 71) % n.companies,
       1 + pg_temp.h(b, 72) % n.job_categories,
       concat_ws(' ', nullif(pg_temp.pick('{Junior,"",Senior,Lead,Staff,Principal,Werkstudent:in}', pg_temp.h(b, 73)), ''),
                 pg_temp.pick(ARRAY['Backend Engineer', 'Data Engineer', 'Product Designer', 'Développeur·se Full-Stack',
                                        'Ingeniero/a de Datos', 'Softwareentwickler (m/w/d)', 'ソフトウェアエンジニア',
                                        'Account Executive', 'Barista', 'Community Manager 🌍', 'Site Reliability Engineer',
                                        'Analista Financiero', 'Krankenpfleger', 'Sous-chef'], pg_temp.h(b, 74))),
       CASE WHEN pg_temp.h(b, 75) % 100 < 8 THEN NULL
            WHEN pg_temp.h(b, 75) % 100 < 14 THEN ''
            ELSE pg_temp.pick(ARRAY[
                     'Join our team and help us scale.', 'Wir suchen Verstärkung für unser Team in ',
                     '¿Te apasionan los datos? Únete a nuestro equipo en ', 'Poste basé à ',
                     '私たちと一緒に働きませんか？勤務地：', '🚀 Fast-growing startup hiring in '], pg_temp.h(b, 76))
                 || pg_temp.pick(pg_temp.cities(), pg_temp.h(b, 77))
                 || E'.\n\n' || pg_temp.pick(ARRAY['Benefits: 30 days vacation, remote budget.',
                                                   'Vorteile: Jobticket, Kantine, flexible Arbeitszeiten.',
                                                   'Beneficios: seguro médico, formación continua.',
                                                   'Avantages : tickets restaurant, télétravail 2 j/sem.'], pg_temp.h(b, 78))
       END,
       CASE WHEN s < 10 THEN 'draft' WHEN s < 65 THEN 'open' WHEN s < 72 THEN 'paused'
            WHEN s < 90 THEN 'closed' ELSE 'filled' END,
       pg_temp.pick('{full_time,full_time,full_time,part_time,contract,internship,temporary}', pg_temp.h(b, 79)),
       remote,
       CASE WHEN remote AND pg_temp.h(b, 80) % 2 = 0 THEN NULL ELSE pg_temp.pick(pg_temp.cities(), pg_temp.h(b, 77)) END,
       smin,
       smin + (5000 + (pg_temp.h(b, 81) % 40) * 1000),
       CASE WHEN smin IS NULL THEN NULL ELSE pg_temp.pick('{EUR,EUR,USD,GBP,SEK,JPY,BRL}', pg_temp.h(b, 82)) END,
       CASE WHEN pg_temp.h(b, 83) % 100 < 10 THEN NULL
            WHEN pg_temp.h(b, 83) % 100 < 20 THEN '{}'::text[]
            ELSE (ARRAY[pg_temp.pick('{remote,hybrid,on-site,visa-sponsorship,équipe-internationale}', pg_temp.h(b, 84)),
                        pg_temp.pick('{python,sql,react,kubernetes,ux,sales,café,日本語}', pg_temp.h(b, 85)),
                        pg_temp.pick('{urgent,new,"4-day-week",equity}', pg_temp.h(b, 86))])[1:1 + pg_temp.h(b, 87) % 3]
       END,
       CASE WHEN pg_temp.h(b, 88) % 100 < 30 THEN NULL
            ELSE (p AT TIME ZONE 'UTC')::date + (30 + pg_temp.h(b, 89) % 60)::integer
       END,
       p,
       p + pg_temp.secs(CASE WHEN pg_temp.h(b, 90) % 100 < 40 THEN 600 + pg_temp.h(b, 91) % 5184000 ELSE 0 END)
FROM n, pg_temp.rows(n.jobs) AS r,
     LATERAL (SELECT pg_temp.h(b, 92) % 100 AS s,
                     pg_temp.h(b, 93) % 3 = 0 AS remote,
                     pg_temp.at(pg_temp.h(b, 94)) AS p,
                     CASE WHEN pg_temp.h(b, 95) % 100 < 25 THEN NULL
                          ELSE (25000 + (pg_temp.h(b, 96) % 1500) * 100 + (pg_temp.h(b, 97) % 2) * 0.5)::numeric(12,2)
                     END AS smin) AS x;

-- link rows: row g is the k-th skill of job j; (7 j + k) mod skills is distinct for k < skills
INSERT INTO job_skills (job_id, skill_id, is_required, created_at)
SELECT x.j, 1 + (7 * x.j + x.k) % n.skills, pg_temp.h(b, 101) % 3 > 0, jb.posted_at + pg_temp.secs(x.k * 60)
FROM n
     CROSS JOIN pg_temp.rows(n.job_skills) AS r
     CROSS JOIN LATERAL (SELECT 1 + (g - 1) % n.jobs AS j, (g - 1) / n.jobs AS k) AS x
     JOIN jobs AS jb ON jb.id = x.j;

-- likewise row g is the k-th skill of user u
INSERT INTO user_skills (user_id, skill_id, level, created_at)
SELECT x.u, 1 + (13 * x.u + x.k) % n.skills, (1 + pg_temp.h(b, 111) % 5)::smallint,
       us.created_at + pg_temp.secs(3600 + pg_temp.h(b, 112) % 7776000)
FROM n
     CROSS JOIN pg_temp.rows(n.user_skills) AS r
     CROSS JOIN LATERAL (SELECT 1 + (g - 1) % n.users AS u, (g - 1) / n.users AS k) AS x
     JOIN users AS us ON us.id = x.u;

-- ---------------------------------------------------------------- applications service
-- row g is the k-th application of user u, to a job distinct for k < jobs
INSERT INTO applications (id, user_id, job_id, status, cover_letter, expected_salary, source, applied_at, updated_at)
SELECT g, x.u, y.j,
       CASE WHEN s < 30 THEN 'submitted' WHEN s < 45 THEN 'screening' WHEN s < 55 THEN 'interviewing'
            WHEN s < 60 THEN 'offered' WHEN s < 64 THEN 'hired' WHEN s < 92 THEN 'rejected'
            ELSE 'withdrawn' END::application_status,
       CASE WHEN pg_temp.h(b, 121) % 100 < 25 THEN NULL
            WHEN pg_temp.h(b, 121) % 100 < 30 THEN ''
            ELSE pg_temp.pick(ARRAY['Dear hiring team,', 'Sehr geehrte Damen und Herren,', 'Estimado equipo:',
                                    'Madame, Monsieur,', '採用ご担当者様', 'Hi there 👋'], pg_temp.h(b, 122))
                 || E'\n' || pg_temp.pick(ARRAY[
                     'I am excited to apply for this role and bring my experience.',
                     'Mit großem Interesse habe ich Ihre Anzeige gelesen.',
                     'Me encantaría formar parte de su equipo; adjunto mi currículum.',
                     'Je suis très motivé·e par ce poste « idéal ».',
                     'これまでの経験を活かして貢献したいと考えております。'], pg_temp.h(b, 123))
       END,
       CASE WHEN pg_temp.h(b, 124) % 100 < 40 THEN NULL
            ELSE (30000 + (pg_temp.h(b, 125) % 120) * 1000)::numeric(12,2)
       END,
       pg_temp.pick('{linkedin,referral,company_site,job_board,job_board,newsletter,xing}', pg_temp.h(b, 126)),
       a,
       a + pg_temp.secs(CASE WHEN s < 30 THEN 0 ELSE 3600 + pg_temp.h(b, 127) % 2592000 END)
FROM n
     CROSS JOIN pg_temp.rows(n.applications) AS r
     CROSS JOIN LATERAL (SELECT 1 + (g - 1) % n.users AS u, (g - 1) / n.users AS k) AS x
     CROSS JOIN LATERAL (SELECT 1 + (7919 * x.u + x.k) % n.jobs AS j, pg_temp.h(b, 128) % 100 AS s) AS y
     JOIN jobs AS jb ON jb.id = y.j
     CROSS JOIN LATERAL (SELECT jb.posted_at + pg_temp.secs(pg_temp.h(b, 129) % 3888000) AS a) AS z;

INSERT INTO application_attachments (id, application_id, file_name, content_type, size_bytes, sha256, storage_key,
                                     uploaded_at, updated_at)
SELECT g, ap.id,
       pg_temp.pick('{CV,Lebenslauf,Résumé,履歴書,cover-letter,portfolio,certificado,"Zeugnis 2023"}', pg_temp.h(b, 131))
           || '_' || g || '.' || ext,
       CASE ext WHEN 'pdf' THEN 'application/pdf'
                WHEN 'docx' THEN 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'
                WHEN 'png' THEN 'image/png' ELSE 'text/plain' END,
       CASE WHEN pg_temp.h(b, 132) % 200 = 0 THEN 0 ELSE 2048 + pg_temp.h(b, 133) % 8000000 END,
       sha256(convert_to('attachment:' || g, 'UTF8')),
       md5('attachment:' || g)::uuid,
       ap.applied_at + pg_temp.secs(pg_temp.h(b, 134) % 600),
       ap.applied_at + pg_temp.secs(pg_temp.h(b, 134) % 600
                                    + CASE WHEN pg_temp.h(b, 135) % 100 < 10 THEN 86400 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.application_attachments) AS r
     CROSS JOIN LATERAL (SELECT pg_temp.pick('{pdf,pdf,pdf,docx,png,txt}', pg_temp.h(b, 136)) AS ext) AS x
     JOIN applications AS ap ON ap.id = 1 + pg_temp.h(b, 137) % n.applications;

INSERT INTO interviews (id, application_id, scheduled_at, duration_minutes, interviewer, location, notes,
                        created_at, updated_at)
SELECT g, ap.id,
       ap.applied_at + pg_temp.secs(259200 + (pg_temp.h(b, 141) % 1920) * 900),
       pg_temp.pick('{30,45,60,60,90}', pg_temp.h(b, 142))::integer,
       pg_temp.pick(pg_temp.first_names(), pg_temp.h(b, 143)) || ' '
           || pg_temp.pick(pg_temp.last_names(), pg_temp.h(b, 144)),
       CASE WHEN pg_temp.h(b, 145) % 100 < 30 THEN NULL
            ELSE pg_temp.pick(ARRAY['Zoom', 'Google Meet', 'Büro München, Raum 3.14', '東京オフィス 5F',
                                    'Oficina Madrid – Sala Goya', 'Phone ☎'], pg_temp.h(b, 146))
       END,
       CASE WHEN pg_temp.h(b, 147) % 100 < 30 THEN NULL
            ELSE jsonb_build_object(
                'rating', 1 + pg_temp.h(b, 148) % 5,
                'recommendation', pg_temp.pick('{hire,no_hire,maybe,"strong hire"}', pg_temp.h(b, 149)),
                'scores', jsonb_build_object('technical', pg_temp.h(b, 150) % 11, 'communication', pg_temp.h(b, 151) % 11),
                'strengths', CASE WHEN pg_temp.h(b, 152) % 4 = 0 THEN '[]'::jsonb
                                  ELSE jsonb_build_array(pg_temp.pick('{SQL,"clear communication",Führung,"trabajo en equipo"}',
                                                                      pg_temp.h(b, 153))) END,
                'comment', CASE WHEN pg_temp.h(b, 154) % 3 = 0 THEN 'null'::jsonb
                                ELSE to_jsonb(pg_temp.pick(ARRAY['Très bon échange.', 'Solid fundamentals 👍',
                                                                 'Kommt zur zweiten Runde.', '技術力が高い。'],
                                                           pg_temp.h(b, 155))) END)
       END,
       ap.applied_at + pg_temp.secs(86400),
       ap.applied_at + pg_temp.secs(86400 + CASE WHEN pg_temp.h(b, 156) % 100 < 60
                                                 THEN pg_temp.h(b, 157) % 1209600 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.interviews) AS r
     JOIN applications AS ap ON ap.id = 1 + pg_temp.h(b, 158) % n.applications;

-- ---------------------------------------------------------------- search service
INSERT INTO search_history (id, user_id, query, filters, results_count, searched_at, updated_at)
SELECT g,
       1 + pg_temp.h(b, 161) % n.users,
       CASE WHEN pg_temp.h(b, 162) % 100 < 12 THEN '' ELSE pg_temp.pick(pg_temp.queries(), pg_temp.h(b, 163)) END,
       CASE WHEN pg_temp.h(b, 164) % 100 < 20 THEN '{}'::jsonb
            ELSE jsonb_build_object(
                'location', pg_temp.pick(pg_temp.cities(), pg_temp.h(b, 165)),
                'remote', pg_temp.h(b, 166) % 2 = 0,
                'salary', jsonb_build_object('min', 20000 + (pg_temp.h(b, 167) % 10) * 10000, 'currency', 'EUR'),
                'categories', jsonb_build_array(1 + pg_temp.h(b, 168) % n.job_categories,
                                                1 + pg_temp.h(b, 169) % n.job_categories))
       END,
       (pg_temp.h(b, 170) % 500)::integer,
       t,
       t + pg_temp.secs(CASE WHEN pg_temp.h(b, 171) % 100 < 5 THEN 1 + pg_temp.h(b, 172) % 600 ELSE 0 END)
FROM n, pg_temp.rows(n.search_history) AS r,
     LATERAL (SELECT pg_temp.at(pg_temp.h(b, 173)) AS t) AS x;

INSERT INTO saved_searches (id, user_id, name, query, filters, alert_frequency, last_alerted_at, created_at, updated_at)
SELECT g,
       1 + pg_temp.h(b, 181) % n.users,
       pg_temp.pick(ARRAY['My search', 'Traumjob 💼', 'Trabajo remoto', 'Remote only', 'Near home 🏠', '東京の求人', ''],
                    pg_temp.h(b, 182)),
       pg_temp.pick(pg_temp.queries(), pg_temp.h(b, 183)),
       jsonb_build_object('remote', pg_temp.h(b, 184) % 2 = 0,
                          'employment_type',
                          jsonb_build_array(pg_temp.pick('{full_time,part_time,contract}', pg_temp.h(b, 185)))),
       freq,
       CASE WHEN freq = 'never' OR pg_temp.h(b, 186) % 100 < 30 THEN NULL
            ELSE c + pg_temp.secs(86400 + pg_temp.h(b, 187) % 15552000) END,
       c,
       c + pg_temp.secs(CASE WHEN pg_temp.h(b, 188) % 100 < 25 THEN 60 + pg_temp.h(b, 189) % 2592000 ELSE 0 END)
FROM n, pg_temp.rows(n.saved_searches) AS r,
     LATERAL (SELECT pg_temp.pick('{never,daily,weekly,weekly}', pg_temp.h(b, 190)) AS freq,
                     pg_temp.at(pg_temp.h(b, 191)) AS c) AS x;

-- ---------------------------------------------------------------- notifications service
-- code = <event>.<locale>[.v<version>], unique for any count
INSERT INTO notification_templates (id, code, channel, locale, subject, body, created_at, updated_at)
SELECT g,
       ev || '.' || loc || CASE WHEN (g - 1) / 60 = 0 THEN '' ELSE '.v' || ((g - 1) / 60 + 1) END,
       CASE (g - 1) % 5 WHEN 3 THEN 'push' WHEN 4 THEN 'sms' ELSE 'email' END,
       loc,
       CASE loc WHEN 'en' THEN 'Update: ' WHEN 'es' THEN '¡Novedades! ' WHEN 'de' THEN 'Neuigkeit für Sie: '
                WHEN 'fr' THEN 'Mise à jour : ' ELSE 'お知らせ：' END
           || CASE WHEN ev = 'welcome' THEN '🎉 ' ELSE '' END || replace(ev, '_', ' '),
       CASE loc WHEN 'en' THEN 'Hello {{first_name}}, '
                WHEN 'es' THEN 'Hola {{first_name}}, tenemos noticias: '
                WHEN 'de' THEN 'Hallo {{first_name}}, es gibt Neuigkeiten – '
                WHEN 'fr' THEN 'Bonjour {{first_name}}, voici les nouveautés : '
                ELSE '{{first_name}} 様、' END
           || '{{' || ev || E'}}\n— jobboard ✉',
       c,
       c + pg_temp.secs(CASE WHEN g % 3 = 0 THEN pg_temp.h(b, 201) % 31536000 ELSE 0 END)
FROM n, pg_temp.rows(n.notification_templates) AS r,
     LATERAL (SELECT pg_temp.pick(ARRAY['welcome', 'application_received', 'application_status_changed',
                                        'interview_scheduled', 'interview_reminder', 'job_alert', 'password_reset',
                                        'new_message', 'offer_extended', 'weekly_digest', 'profile_incomplete',
                                        'saved_search_match'], g - 1) AS ev,
                     pg_temp.pick('{en,es,de,fr,ja}', (g - 1) / 12) AS loc,
                     timestamptz '2023-01-01 00:00:00+00' + pg_temp.secs(pg_temp.h(b, 202) % 2592000) AS c) AS x;

INSERT INTO notifications (id, user_id, template_id, channel, payload, read_at, created_at, updated_at)
SELECT g, 1 + pg_temp.h(b, 211) % n.users, t.id, t.channel,
       jsonb_build_object(
           'job', jsonb_build_object('id', 1 + pg_temp.h(b, 212) % n.jobs, 'title',
                                     pg_temp.pick(ARRAY['Backend Engineer', 'Diseñador/a UX', 'Koch/Köchin', 'データアナリスト'],
                                                  pg_temp.h(b, 213))),
           'link', 'https://jobboard.example/j/' || (1 + pg_temp.h(b, 212) % n.jobs),
           'meta', jsonb_build_object('attempt', 1 + pg_temp.h(b, 214) % 3, 'batch', 'b' || (g / 1000),
                                      'tags', CASE WHEN pg_temp.h(b, 215) % 2 = 0 THEN '[]'::jsonb
                                                   ELSE '["digest", "priority"]'::jsonb END)),
       CASE WHEN pg_temp.h(b, 216) % 100 < 35 THEN NULL ELSE c + pg_temp.secs(30 + pg_temp.h(b, 217) % 259200) END,
       c,
       CASE WHEN pg_temp.h(b, 216) % 100 < 35 THEN c ELSE c + pg_temp.secs(30 + pg_temp.h(b, 217) % 259200) END
FROM n
     CROSS JOIN pg_temp.rows(n.notifications) AS r
     CROSS JOIN LATERAL (SELECT pg_temp.at(pg_temp.h(b, 218)) AS c) AS x
     JOIN notification_templates AS t ON t.id = 1 + pg_temp.h(b, 219) % n.notification_templates;

-- one row for some users: user floor((g-1) * users / count) + 1 is distinct for count <= users
INSERT INTO notification_preferences (user_id, email_enabled, push_enabled, sms_enabled, digest_frequency,
                                      quiet_hours, updated_at)
SELECT 1 + (g - 1) * n.users / n.notification_preferences,
       pg_temp.h(b, 221) % 10 > 0,
       pg_temp.h(b, 222) % 3 > 0,
       pg_temp.h(b, 223) % 5 = 0,
       pg_temp.pick('{never,daily,weekly,weekly}', pg_temp.h(b, 224)),
       CASE WHEN pg_temp.h(b, 225) % 100 < 60 THEN NULL
            ELSE jsonb_build_object('start', pg_temp.pick('{21:00,22:00,23:00}', pg_temp.h(b, 226)), 'end', '07:00',
                                    'days', '["sat", "sun"]'::jsonb,
                                    'tz', pg_temp.pick('{Europe/Madrid,Europe/Berlin,Asia/Tokyo}', pg_temp.h(b, 227)))
       END,
       pg_temp.at(pg_temp.h(b, 228))
FROM n, pg_temp.rows(n.notification_preferences) AS r;

-- ---------------------------------------------------------------- analytics service
INSERT INTO analytics_events (id, user_id, session_id, event_type, properties, ip_address, occurred_at, updated_at)
SELECT g,
       CASE WHEN pg_temp.h(b, 231) % 100 < 30 THEN NULL ELSE 1 + pg_temp.h(b, 232) % n.users END,
       md5('session:' || (g / 7))::uuid,
       ev,
       jsonb_build_object(
           'page', CASE ev WHEN 'job_view' THEN '/jobs/' || (1 + pg_temp.h(b, 233) % n.jobs)
                           WHEN 'search' THEN '/search' ELSE '/' END,
           'referrer', CASE WHEN pg_temp.h(b, 234) % 100 < 40 THEN 'null'::jsonb
                            ELSE to_jsonb(pg_temp.pick(
                                     '{https://www.google.com/,https://www.linkedin.com/,https://t.co/,""}',
                                     pg_temp.h(b, 235))) END,
           'device', pg_temp.pickj(pg_temp.devices(), pg_temp.h(b, 236)),
           'search_query', CASE WHEN ev = 'search' THEN to_jsonb(pg_temp.pick(pg_temp.queries(), pg_temp.h(b, 239))) END,
           'utm', CASE WHEN pg_temp.h(b, 240) % 100 < 70 THEN '{}'::jsonb
                       ELSE pg_temp.pickj(ARRAY['{"source": "newsletter", "campaign": "spring_2023"}',
                                               '{"source": "twitter", "campaign": "launch 🚀"}',
                                               '{"source": "partner", "medium": "cpc", "campaign": "spring_2024"}']::jsonb[],
                                         pg_temp.h(b, 241)) END),
       CASE WHEN ip % 100 < 15 THEN NULL
            WHEN ip % 100 < 25 THEN ('2001:db8::' || to_hex((ip / 100 % 65535)::integer))::inet
            ELSE ('10.' || ip / 100 % 256 || '.' || ip / 25600 % 256 || '.' || ip / 6553600 % 256)::inet
       END,
       t,
       t + pg_temp.secs(CASE WHEN pg_temp.h(b, 243) % 100 < 3 THEN 1 + pg_temp.h(b, 244) % 86400 ELSE 0 END)
FROM n, pg_temp.rows(n.analytics_events) AS r,
     LATERAL (SELECT pg_temp.pick('{page_view,page_view,page_view,job_view,job_view,search,apply_click,signup,'
                                  'login,save_job,share_job}',
                                  pg_temp.h(b, 245)) AS ev,
                     pg_temp.h(b, 246) AS ip,
                     pg_temp.at(pg_temp.h(b, 247)) AS t) AS x;

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
