-- helpdesk: deterministic data generator, run after schema.sql and before constraints.sql.
--
-- Row counts come from the custom settings dbsplit.<table> (set by dbsplit.samples with set_config from
-- sizes.yaml). Every value derives from the row number g: pg_temp.rows() pairs it with a mixed value b,
-- and pg_temp.h(b, k) draws stream k from b. Integer arithmetic only: no random(), now() or hashtext(),
-- so the same counts give the same bytes on every PostgreSQL version. Timestamps lie in
-- 2023-01-01 .. 2024-12-31 UTC (plus later updates); the session runs with TimeZone UTC.
--
-- Roles follow from the user id, so that tickets can pick agents without a join: user 1 is the admin,
-- ids = 3 (mod 8) are agents (= 11 (mod 64): team leads), ids = 5 (mod 97) otherwise are managers.

-- ---------------------------------------------------------------- helpers (session-local)
-- pg_temp.rows, h, pick, pickj, at and secs: ../generate_helpers.sql, run just before this script

-- the i-th agent among users 1..users: ids 3, 11, 19, ... (users >= 3)
CREATE FUNCTION pg_temp.agent(i bigint, users bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 3 + 8 * (i % ((users - 3) / 8 + 1)) $$;

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

CREATE FUNCTION pg_temp.cjk_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    '李小龙', '王芳', '张伟', '山田太郎', '佐藤花子', '김민준', '이서연', '陳美玲', '鈴木一郎', '박지훈'] $$;

CREATE FUNCTION pg_temp.subjects() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY[
    'Cannot log in to VPN', 'Laptop won''t boot after update', 'Drucker im 3. OG druckt nicht',
    'No puedo acceder al correo', 'Demande d''accès au dossier « Finance »', 'Passwort zurücksetzen',
    'New hire onboarding: équipement', 'Outlook crashes on start 😩', 'Monitor flickers',
    'Request: Adobe Acrobat licence', 'Wi-Fi langsam in Raum 2.14', 'Teams-Anruf ohne Ton',
    'パスワードを忘れました', 'Solicitud de permiso de vacaciones', 'URGENT: server room temperature 🔥',
    'Phone line dead – Empfang', 'Access badge not working', 'Kein Zugriff auf SharePoint',
    'Software install request: Python 3.12', 'Réinitialisation MFA', '打印机卡纸', 'Mouse missing 🐭'] $$;

-- ---------------------------------------------------------------- counts
CREATE TEMP TABLE n ON COMMIT DROP AS SELECT
    current_setting('dbsplit.departments')::bigint          AS departments,
    current_setting('dbsplit.users')::bigint                AS users,
    current_setting('dbsplit.sla_templates')::bigint        AS sla_templates,
    current_setting('dbsplit.tickets')::bigint              AS tickets,
    current_setting('dbsplit.sub_tickets')::bigint          AS sub_tickets,
    current_setting('dbsplit.approvals')::bigint            AS approvals,
    current_setting('dbsplit.chat_messages')::bigint        AS chat_messages,
    current_setting('dbsplit.notifications')::bigint        AS notifications,
    current_setting('dbsplit.ticket_participants')::bigint  AS ticket_participants,
    current_setting('dbsplit.attachments')::bigint          AS attachments;
ANALYZE n;

DO $$
BEGIN
    IF EXISTS (SELECT FROM n WHERE users < 3 OR ticket_participants > tickets * users
                                OR sub_tickets > tickets * 30000) THEN
        RAISE EXCEPTION 'helpdesk counts out of bounds: %', (SELECT row_to_json(n) FROM n);
    END IF;
END
$$;

-- ---------------------------------------------------------------- users service
-- the first quarter are top-level departments, the rest hang below them (a self-referencing table)
INSERT INTO departments (id, parent_id, code, name, cost_center, email_alias, created_at, updated_at)
SELECT g,
       CASE WHEN g <= top THEN NULL ELSE 1 + (g - 1) % top END,
       'DEP-' || lpad(g::text, greatest(3, length(g::text)), '0'),
       CASE WHEN g <= top
            THEN pg_temp.pick(ARRAY['IT-Service', 'Ressources humaines', 'Finanzen & Controlling', 'Atención al cliente',
                                    '総務部', 'Facilities', 'Legal & Compliance', 'Sécurité', 'Einkauf', 'Marketing'],
                              g - 1)
            ELSE pg_temp.pick(ARRAY['1st Level Support', '2nd Level Support', 'Arbeitsplatz-Service', 'Nómina',
                                    'Recrutement', 'Buchhaltung', 'Netzwerk & Telefonie', 'Helpdesk Nord',
                                    'Helpdesk Süd', 'Réseau', 'アプリ運用', 'Field Service'], g)
       END || CASE WHEN g > 40 THEN ' ' || ((g - 1) / 40 + 1) ELSE '' END,
       CASE WHEN pg_temp.h(b, 1) % 100 < 20 THEN NULL
            WHEN pg_temp.h(b, 1) % 100 < 30 THEN ''
            ELSE 'CC-' || (1000 + pg_temp.h(b, 2) % 9000)
       END,
       CASE WHEN pg_temp.h(b, 3) % 100 < 40 THEN NULL ELSE 'dept-' || g || '@helpdesk.example' END,
       c,
       c + pg_temp.secs(CASE WHEN g % 3 = 0 THEN pg_temp.h(b, 4) % 31536000 ELSE 0 END)
FROM n, pg_temp.rows(n.departments) AS r,
     LATERAL (SELECT greatest(1, n.departments / 4) AS top,
                     timestamptz '2023-01-01 00:00:00+00' + pg_temp.secs(pg_temp.h(b, 5) % 604800) AS c) AS x;

INSERT INTO users (id, department_id, email, display_name, role, locale, timezone, phone, job_title, skills,
                   preferences, is_active, last_login_at, created_at, updated_at)
SELECT g,
       CASE WHEN pg_temp.h(b, 11) % 100 < 10 THEN NULL ELSE 1 + pg_temp.h(b, 12) % n.departments END,
       -- a few addresses keep the capitals they were typed with
       CASE WHEN pg_temp.h(b, 13) % 100 < 4 THEN initcap(pg_temp.pick(pg_temp.first_slugs(), f)) || '.' || g || '@Corp.Example'
            ELSE pg_temp.pick(pg_temp.first_slugs(), f) || '.' || g || '@'
                 || pg_temp.pick('{corp.example,helpdesk.example,partner.example}', pg_temp.h(b, 14))
       END,
       CASE WHEN pg_temp.h(b, 15) % 100 < 8 THEN pg_temp.pick(pg_temp.cjk_names(), pg_temp.h(b, 16))
            ELSE pg_temp.pick(pg_temp.first_names(), f) || ' ' || pg_temp.pick(pg_temp.last_names(), pg_temp.h(b, 17))
       END,
       role,
       pg_temp.pick('{en-US,en-GB,de-DE,fr-FR,es-ES,ja-JP,zh-CN,pt-BR}', pg_temp.h(b, 18)),
       pg_temp.pick('{Europe/Berlin,Europe/Paris,Europe/Madrid,America/New_York,Asia/Tokyo,UTC}', pg_temp.h(b, 19)),
       CASE WHEN pg_temp.h(b, 20) % 100 < 20 THEN NULL
            WHEN pg_temp.h(b, 20) % 100 < 25 THEN ''
            ELSE '+' || (1 + pg_temp.h(b, 21) % 89) || ' ' || lpad((pg_temp.h(b, 22) % 1000000000)::text, 9, '0')
       END,
       CASE WHEN pg_temp.h(b, 23) % 100 < 30 THEN NULL
            ELSE pg_temp.pick(ARRAY['Service Desk Analyst', 'Técnico de soporte', 'Sachbearbeiterin', 'Chef de projet',
                                    'システムエンジニア', 'Office Manager', 'Buchhalter', 'Consultor SAP',
                                    'Développeuse', 'Head of IT'], pg_temp.h(b, 24))
       END,
       CASE WHEN role NOT IN ('agent', 'team_lead') THEN NULL
            WHEN pg_temp.h(b, 25) % 5 = 0 THEN '{}'::text[]
            ELSE (ARRAY[pg_temp.pick('{Windows,macOS,Linux,Netzwerk}', pg_temp.h(b, 26)),
                        pg_temp.pick('{SAP,Office 365,Drucker,"Active Directory"}', pg_temp.h(b, 27)),
                        pg_temp.pick('{Español,Deutsch,Français,日本語}', pg_temp.h(b, 28))])[1:1 + pg_temp.h(b, 29) % 3]
       END,
       jsonb_build_object(
           'theme', pg_temp.pick('{light,dark,system}', pg_temp.h(b, 30)),
           'signature', CASE WHEN pg_temp.h(b, 31) % 3 = 0 THEN 'null'::jsonb
                             ELSE to_jsonb(E'--\n' || pg_temp.pick(pg_temp.first_names(), f) || ' ✉') END,
           'notify', jsonb_build_object('email', pg_temp.h(b, 32) % 4 > 0, 'push', pg_temp.h(b, 33) % 2 = 0,
                                        'digest', pg_temp.pick('{never,daily,weekly}', pg_temp.h(b, 34))),
           'shortcuts', CASE WHEN pg_temp.h(b, 35) % 2 = 0 THEN '[]'::jsonb ELSE '["g t", "g i", "?"]'::jsonb END),
       pg_temp.h(b, 36) % 100 >= 7,
       CASE WHEN pg_temp.h(b, 37) % 100 < 15 THEN NULL ELSE c + pg_temp.secs(3600 + pg_temp.h(b, 38) % 31536000) END,
       c,
       c + pg_temp.secs(CASE WHEN pg_temp.h(b, 39) % 100 < 35 THEN 60 + pg_temp.h(b, 40) % 15552000 ELSE 0 END)
FROM n, pg_temp.rows(n.users) AS r,
     LATERAL (SELECT pg_temp.h(b, 10) % 40 AS f,
                     pg_temp.at(pg_temp.h(b, 41)) AS c,
                     (CASE WHEN g = 1 THEN 'admin'
                           WHEN g % 64 = 11 THEN 'team_lead'
                           WHEN g % 8 = 3 THEN 'agent'
                           WHEN g % 97 = 5 THEN 'manager'
                           ELSE 'requester' END)::user_role AS role) AS x;

-- ---------------------------------------------------------------- tickets service
INSERT INTO sla_templates (id, name, priority, first_response_minutes, resolution_minutes, business_hours,
                           is_default, created_at, updated_at)
SELECT g,
       initcap(prio) || ' · ' || tier || CASE WHEN g > 20 THEN ' v' || ((g - 1) / 20 + 1) ELSE '' END,
       prio::ticket_priority,
       first_minutes,
       first_minutes * pg_temp.pick('{4,8,12,24}', pg_temp.h(b, 51))::integer,
       CASE WHEN tier = 'Platinum' THEN '{"24x7": true}'::jsonb
            ELSE jsonb_build_object(
                'tz', pg_temp.pick('{Europe/Berlin,Europe/Madrid,Asia/Tokyo}', pg_temp.h(b, 52)),
                'days', CASE WHEN pg_temp.h(b, 53) % 4 = 0 THEN '["mon", "tue", "wed", "thu", "fri", "sat"]'::jsonb
                             ELSE '["mon", "tue", "wed", "thu", "fri"]'::jsonb END,
                'from', '08:00', 'to', pg_temp.pick('{17:00,18:00,20:00}', pg_temp.h(b, 54)),
                'holidays', CASE WHEN pg_temp.h(b, 55) % 3 = 0 THEN '[]'::jsonb
                                 ELSE '["2024-01-01", "2024-05-01", "2024-12-25"]'::jsonb END)
       END,
       g <= 4,
       c,
       c + pg_temp.secs(CASE WHEN g % 2 = 0 THEN pg_temp.h(b, 56) % 31536000 ELSE 0 END)
FROM n, pg_temp.rows(n.sla_templates) AS r,
     LATERAL (SELECT pg_temp.pick('{normal,high,urgent,low}', g - 1) AS prio,
                     pg_temp.pick('{Standard,Gold,Platinum,Interne,Bronze–Partner}', (g - 1) / 4) AS tier,
                     timestamptz '2023-01-01 00:00:00+00' + pg_temp.secs(pg_temp.h(b, 57) % 86400) AS c) AS x,
     LATERAL (SELECT CASE prio WHEN 'urgent' THEN 15 WHEN 'high' THEN 60 WHEN 'normal' THEN 240
                               ELSE 480 END AS first_minutes) AS y;

INSERT INTO tickets (id, number, requester_id, assignee_id, department_id, sla_template_id, subject, description,
                     status, priority, channel, tags, custom_fields, due_at, first_response_at, resolved_at,
                     created_at, updated_at)
SELECT g,
       'HD-' || (100000 + g),
       1 + pg_temp.h(b, 61) % n.users,
       CASE WHEN st = 'new' OR pg_temp.h(b, 62) % 100 < 8 THEN NULL ELSE pg_temp.agent(pg_temp.h(b, 63), n.users) END,
       1 + pg_temp.h(b, 64) % n.departments,
       1 + pg_temp.h(b, 65) % n.sla_templates,
       pg_temp.pick(pg_temp.subjects(), pg_temp.h(b, 66)),
       CASE WHEN pg_temp.h(b, 67) % 100 < 5 THEN NULL
            WHEN pg_temp.h(b, 67) % 100 < 10 THEN ''
            ELSE pg_temp.pick(ARRAY['Hello,', 'Hallo zusammen,', 'Bonjour,', 'Hola:', 'お疲れ様です。', 'Hi team 👋'],
                              pg_temp.h(b, 68))
                 || E'\n\n' || pg_temp.pick(ARRAY[
                     'since this morning it does not work anymore. Restart did not help.',
                     'seit dem Update heute früh funktioniert es nicht mehr.',
                     'desde ayer no puedo trabajar; adjunto captura de pantalla.',
                     'merci de traiter ma demande en priorité « haute ».',
                     '至急対応をお願いします。',
                     E'steps:\n1. open app\n2. click "Login"\n3. error 0x80070005'], pg_temp.h(b, 69))
       END,
       st::ticket_status,
       pg_temp.pick('{normal,normal,normal,low,high,high,urgent}', pg_temp.h(b, 70))::ticket_priority,
       pg_temp.pick('{email,email,portal,portal,chat,phone,api}', pg_temp.h(b, 71)),
       CASE WHEN pg_temp.h(b, 72) % 100 < 30 THEN '{}'::text[]
            ELSE (ARRAY[pg_temp.pick('{hardware,software,access,network,hr,facilities}', pg_temp.h(b, 73)),
                        pg_temp.pick('{vip,"follow-up",réouvert,remote,"on-site",至急}', pg_temp.h(b, 74)),
                        pg_temp.pick('{q1,q2,q3,q4}', pg_temp.h(b, 75))])[1:1 + pg_temp.h(b, 76) % 3]
       END,
       CASE WHEN pg_temp.h(b, 77) % 100 < 40 THEN NULL
            ELSE jsonb_build_object(
                'asset_tag', CASE WHEN pg_temp.h(b, 78) % 4 = 0 THEN 'null'::jsonb
                                  ELSE to_jsonb('NB-' || (10000 + pg_temp.h(b, 79) % 90000)) END,
                'os', pg_temp.pick('{Windows 11,macOS 14,Ubuntu 22.04,iOS 17}', pg_temp.h(b, 80)),
                'impact', jsonb_build_object('users', 1 + pg_temp.h(b, 81) % 50, 'business_critical', pg_temp.h(b, 82) % 5 = 0),
                'location', pg_temp.pick('{Berlin HQ,Madrid – Castellana,Lyon,東京オフィス,Home office 🏠}', pg_temp.h(b, 83)))
       END,
       CASE WHEN pg_temp.h(b, 84) % 100 < 20 THEN NULL ELSE c + pg_temp.secs(14400 + pg_temp.h(b, 85) % 1209600) END,
       fr,
       rs,
       c,
       greatest(c, fr, rs) + pg_temp.secs(CASE WHEN pg_temp.h(b, 86) % 100 < 20 THEN 60 + pg_temp.h(b, 87) % 86400 ELSE 0 END)
FROM n, pg_temp.rows(n.tickets) AS r,
     LATERAL (SELECT pg_temp.h(b, 88) % 100 AS s, pg_temp.at(pg_temp.h(b, 89)) AS c) AS x,
     LATERAL (SELECT CASE WHEN s < 12 THEN 'new' WHEN s < 30 THEN 'open' WHEN s < 40 THEN 'pending'
                          WHEN s < 45 THEN 'on_hold' WHEN s < 72 THEN 'solved' ELSE 'closed' END AS st) AS y,
     LATERAL (SELECT CASE WHEN st = 'new' THEN NULL ELSE c + pg_temp.secs(60 + pg_temp.h(b, 90) % 172800) END AS fr,
                     CASE WHEN st IN ('solved', 'closed') THEN c + pg_temp.secs(172800 + pg_temp.h(b, 91) % 1209600)
                     END AS rs) AS z;

-- sub-tickets come in groups of three: group j belongs to ticket t and numbers them "order" 1, 2, 3; the
-- groups spread evenly over the tickets while there are fewer groups than tickets, and continue with
-- "order" 4, 5, 6 ... on the same tickets beyond that, so (ticket_id, "order") is unique for any count
INSERT INTO sub_tickets (id, ticket_id, "order", title, assignee_id, status, created_at, updated_at)
SELECT g, x.t, x.o::smallint,
       pg_temp.pick(ARRAY['Hardware bestellen', 'Create AD account', 'Configurar VPN', 'Install software',
                          'Vérifier les droits d''accès', 'Backup prüfen', 'Notify user ✉', '設定を確認する',
                          'Escalate to vendor', ''], pg_temp.h(b, 101)),
       CASE WHEN pg_temp.h(b, 102) % 100 < 25 THEN NULL ELSE pg_temp.agent(pg_temp.h(b, 103), n.users) END,
       pg_temp.pick('{new,open,open,pending,solved,solved,closed}', pg_temp.h(b, 104))::ticket_status,
       tk.created_at + pg_temp.secs(600 + x.o * 3600 + pg_temp.h(b, 105) % 86400),
       tk.created_at + pg_temp.secs(600 + x.o * 3600 + pg_temp.h(b, 105) % 86400
                                    + CASE WHEN pg_temp.h(b, 106) % 100 < 50 THEN pg_temp.h(b, 107) % 604800 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.sub_tickets) AS r
     CROSS JOIN LATERAL (SELECT (g - 1) / 3 AS j, (g - 1) % 3 + 1 AS i, (n.sub_tickets + 2) / 3 AS groups) AS w
     CROSS JOIN LATERAL (SELECT CASE WHEN w.groups <= n.tickets THEN 1 + w.j * n.tickets / w.groups
                                     ELSE 1 + w.j % n.tickets END AS t,
                                CASE WHEN w.groups <= n.tickets THEN w.i
                                     ELSE w.i + 3 * (w.j / n.tickets) END AS o) AS x
     JOIN tickets AS tk ON tk.id = x.t;

INSERT INTO approvals (id, ticket_id, approver_id, state, comment, requested_at, decided_at, updated_at)
SELECT g, tk.id, pg_temp.agent(pg_temp.h(b, 111), n.users),
       st::approval_state,
       CASE WHEN pg_temp.h(b, 112) % 100 < 45 THEN NULL
            WHEN pg_temp.h(b, 112) % 100 < 55 THEN ''
            ELSE pg_temp.pick(ARRAY['LGTM 👍', 'Genehmigt – bitte Budget prüfen.', 'Aprobado, pero con cambios.',
                                    'Refusé : hors périmètre.', '承認します。', E'Approved.\nPlease loop in finance.'],
                              pg_temp.h(b, 113))
       END,
       q,
       d,
       coalesce(d, q)
FROM n
     CROSS JOIN pg_temp.rows(n.approvals) AS r
     JOIN tickets AS tk ON tk.id = 1 + pg_temp.h(b, 114) % n.tickets
     CROSS JOIN LATERAL (SELECT pg_temp.h(b, 115) % 100 AS s,
                                tk.created_at + pg_temp.secs(300 + pg_temp.h(b, 116) % 172800) AS q) AS x
     CROSS JOIN LATERAL (SELECT CASE WHEN s < 20 THEN 'pending' WHEN s < 75 THEN 'approved' WHEN s < 92 THEN 'rejected'
                                     ELSE 'cancelled' END AS st) AS y
     CROSS JOIN LATERAL (SELECT CASE WHEN st = 'pending' THEN NULL
                                     ELSE q + pg_temp.secs(60 + pg_temp.h(b, 117) % 604800) END AS d) AS z;

-- ---------------------------------------------------------------- messaging service
INSERT INTO chat_messages (id, ticket_id, author_id, body, is_internal, metadata, edited_at, created_at, updated_at)
SELECT g, tk.id,
       CASE WHEN who < 8 THEN NULL WHEN who < 55 THEN tk.requester_id
            ELSE coalesce(tk.assignee_id, pg_temp.agent(pg_temp.h(b, 121), n.users)) END,
       CASE WHEN who < 8
            THEN pg_temp.pick(ARRAY['Ticket created via e-mail.', 'Status changed to “pending”.', 'SLA breached ⚠️',
                                    'Ticket zusammengeführt mit HD-' || (100000 + 1 + pg_temp.h(b, 122) % n.tickets),
                                    'Asignado automáticamente.'], pg_temp.h(b, 123))
            WHEN pg_temp.h(b, 124) % 100 < 6 THEN ''
            ELSE pg_temp.pick(ARRAY['Any update on this?', 'Können Sie bitte kurz zurückrufen?', 'Gracias, ya funciona 🙏',
                                    'J''ai redémarré, même erreur.', 'ログを添付します。',
                                    E'Please try:\n- sign out\n- clear cache\n- sign in again',
                                    '@' || pg_temp.pick(pg_temp.first_slugs(), pg_temp.h(b, 125)) || ' can you take a look?',
                                    'Fixed ✅ — closing.', '<b>HTML</b> from the e-mail gateway &amp; friends'],
                              pg_temp.h(b, 126))
       END,
       who >= 55 AND pg_temp.h(b, 127) % 100 < 25,
       CASE WHEN pg_temp.h(b, 128) % 100 < 50 THEN '{}'::jsonb
            ELSE pg_temp.pickj(ARRAY['{"via": "email", "headers": {"x-mailer": "Outlook 16.0", "in-reply-to": null}}',
                                     '{"via": "chat", "reactions": {"👍": 2, "🎉": 1}}',
                                     '{"client": {"app": "ios", "version": "5.2.1"}, "offline": true}',
                                     '{"via": "api", "source": "monitoring", "alerts": [{"id": 17, "level": "crit"}]}',
                                     '{"translated_from": "de", "translation": {"en": "Thanks!"}}']::jsonb[],
                               pg_temp.h(b, 129))
       END,
       CASE WHEN pg_temp.h(b, 130) % 100 < 90 THEN NULL ELSE m + pg_temp.secs(30 + pg_temp.h(b, 131) % 3600) END,
       m,
       m + pg_temp.secs(CASE WHEN pg_temp.h(b, 130) % 100 < 90 THEN 0 ELSE 30 + pg_temp.h(b, 131) % 3600 END)
FROM n
     CROSS JOIN pg_temp.rows(n.chat_messages) AS r
     JOIN tickets AS tk ON tk.id = 1 + pg_temp.h(b, 132) % n.tickets
     CROSS JOIN LATERAL (SELECT pg_temp.h(b, 133) % 100 AS who,
                                tk.created_at + pg_temp.secs(pg_temp.h(b, 134) % 2592000) AS m) AS x;

INSERT INTO notifications (id, user_id, ticket_id, kind, channel, payload, read_at, created_at, updated_at)
SELECT g, 1 + pg_temp.h(b, 141) % n.users, tid, kind,
       pg_temp.pick('{email,email,push,in_app,in_app,sms}', pg_temp.h(b, 142)),
       jsonb_build_object(
           'ticket', CASE WHEN tid IS NULL THEN 'null'::jsonb ELSE to_jsonb('HD-' || (100000 + tid)) END,
           'title', pg_temp.pick(ARRAY['Neue Antwort auf Ihr Ticket', 'Your ticket was updated', 'Ticket résolu ✅',
                                       'Se le ha asignado un ticket', 'チケットが更新されました'], pg_temp.h(b, 143)),
           'actor', CASE WHEN pg_temp.h(b, 144) % 5 = 0 THEN 'null'::jsonb
                         ELSE jsonb_build_object('id', pg_temp.agent(pg_temp.h(b, 145), n.users), 'kind', 'agent') END,
           'priority', pg_temp.h(b, 146) % 3),
       CASE WHEN pg_temp.h(b, 147) % 100 < 40 THEN NULL ELSE c + pg_temp.secs(10 + pg_temp.h(b, 148) % 259200) END,
       c,
       CASE WHEN pg_temp.h(b, 147) % 100 < 40 THEN c ELSE c + pg_temp.secs(10 + pg_temp.h(b, 148) % 259200) END
FROM n, pg_temp.rows(n.notifications) AS r,
     LATERAL (SELECT CASE WHEN pg_temp.h(b, 149) % 100 < 15 THEN NULL ELSE 1 + pg_temp.h(b, 150) % n.tickets END AS tid,
                     pg_temp.pick('{ticket_created,ticket_assigned,new_reply,status_changed,sla_warning,approval_requested,'
                                  'mention,weekly_digest}', pg_temp.h(b, 151)) AS kind,
                     pg_temp.at(pg_temp.h(b, 152)) AS c) AS x;

-- link rows: row g is the k-th participant of ticket t; (7919 t + k) mod users is distinct for k < users
INSERT INTO ticket_participants (ticket_id, user_id, role, muted, added_at)
SELECT x.t, 1 + (7919 * x.t + x.k) % n.users,
       pg_temp.pick('{watcher,watcher,cc,collaborator,approver}', pg_temp.h(b, 161)),
       pg_temp.h(b, 162) % 10 = 0,
       tk.created_at + pg_temp.secs(x.k * 3600 + pg_temp.h(b, 163) % 3600)
FROM n
     CROSS JOIN pg_temp.rows(n.ticket_participants) AS r
     CROSS JOIN LATERAL (SELECT 1 + (g - 1) % n.tickets AS t, (g - 1) / n.tickets AS k) AS x
     JOIN tickets AS tk ON tk.id = x.t;

-- ---------------------------------------------------------------- attachments service
INSERT INTO attachments (id, ticket_id, message_id, uploaded_by, file_name, content_type, size_bytes, sha256,
                         storage_key, is_inline, created_at, updated_at)
SELECT g, cm.ticket_id,
       CASE WHEN pg_temp.h(b, 171) % 100 < 30 THEN NULL ELSE cm.id END,
       coalesce(cm.author_id, tk.requester_id),
       pg_temp.pick('{screenshot,Bildschirmfoto,"captura de pantalla",capture,スクリーンショット,log,Fehlerprotokoll,'
                    'invoice,"Rechnung März",contrato}', pg_temp.h(b, 172)) || '_' || g || '.' || ext,
       CASE ext WHEN 'png' THEN 'image/png' WHEN 'jpg' THEN 'image/jpeg' WHEN 'pdf' THEN 'application/pdf'
                WHEN 'log' THEN 'text/plain' ELSE 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet' END,
       CASE WHEN pg_temp.h(b, 173) % 200 = 0 THEN 0 ELSE 512 + pg_temp.h(b, 174) % 20000000 END,
       sha256(convert_to('helpdesk-attachment:' || g, 'UTF8')),
       md5('helpdesk-attachment:' || g)::uuid,
       ext IN ('png', 'jpg') AND pg_temp.h(b, 175) % 3 = 0,
       cm.created_at + pg_temp.secs(pg_temp.h(b, 176) % 120),
       cm.created_at + pg_temp.secs(pg_temp.h(b, 176) % 120
                                    + CASE WHEN pg_temp.h(b, 177) % 100 < 5 THEN 86400 ELSE 0 END)
FROM n
     CROSS JOIN pg_temp.rows(n.attachments) AS r
     CROSS JOIN LATERAL (SELECT pg_temp.pick('{png,png,jpg,pdf,pdf,log,xlsx}', pg_temp.h(b, 178)) AS ext) AS x
     JOIN chat_messages AS cm ON cm.id = 1 + pg_temp.h(b, 179) % n.chat_messages
     JOIN tickets AS tk ON tk.id = cm.ticket_id;

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
