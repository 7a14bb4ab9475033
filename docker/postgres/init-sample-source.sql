-- Runs once, when the PostgreSQL volume is first created (as the POSTGRES_USER, in the metadata database).
-- Creates a login for the pipelines and two databases: a sample source with an orders table, and a target.
CREATE ROLE sync LOGIN PASSWORD 'sync';
CREATE DATABASE sync_source OWNER sync;
CREATE DATABASE sync_target OWNER sync;

\connect sync_source sync

CREATE TABLE public.orders (
    id          bigint PRIMARY KEY,
    email       text,
    phone       text,
    full_name   text,
    amount      numeric(12, 2) NOT NULL,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX orders_updated_at_id ON public.orders (updated_at, id);

INSERT INTO public.orders
SELECT n,
       'customer' || n || '@example.com',
       '+3361234' || lpad(n::text, 4, '0'),
       'Customer ' || n,
       round((random() * 500)::numeric, 2),
       (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + n % 4],
       now() - make_interval(mins => n),
       now() - make_interval(mins => n)
FROM generate_series(1, 10000) AS n;
