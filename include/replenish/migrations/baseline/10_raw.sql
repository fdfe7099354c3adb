-- Schema raw: the loader's tables (from replenish.extract.contract as of this release) and the tills' receipts.
-- Revision 0001 (baseline), verbatim from release 0.1.0; idempotent: see versions/0001_baseline.py.
create schema if not exists raw;
-- The __key_idx indexes of the transaction tables whose staging key is not the business date: dbt's incremental
-- staging (dbt_project/macros/incremental_staging.sql) looks up every version of a changed key through them.
create table if not exists raw.pos_sales_lines (
    receipt_id text not null,
    store_id integer not null,
    item_id integer not null,
    sold_at timestamptz not null,
    quantity numeric not null,
    unit_price numeric not null,
    amount numeric not null,
    weekday text,
    _business_date date not null,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamptz not null default now()
);
create index if not exists pos_sales_lines__business_date_idx on raw.pos_sales_lines (_business_date);
create index if not exists pos_sales_lines__key_idx on raw.pos_sales_lines (receipt_id);

create table if not exists raw.pos_stock_levels (
    store_id integer not null,
    item_id integer not null,
    snapshot_at timestamptz not null,
    on_hand_qty numeric not null,
    _business_date date not null,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamptz not null default now()
);
create index if not exists pos_stock_levels__business_date_idx on raw.pos_stock_levels (_business_date);

create table if not exists raw.pos_waste_lines (
    store_id integer not null,
    item_id integer not null,
    waste_date date not null,
    quantity numeric not null,
    reason text not null,
    _business_date date not null,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamptz not null default now()
);
create index if not exists pos_waste_lines__business_date_idx on raw.pos_waste_lines (_business_date);
create index if not exists pos_waste_lines__key_idx on raw.pos_waste_lines (store_id, item_id, waste_date);

create table if not exists raw.mms_stores (
    store_id integer not null,
    store_name text not null,
    city text not null,
    region text not null,
    opened_date date not null,
    is_active boolean not null,
    _business_date date not null,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamptz not null default now()
);
create index if not exists mms_stores__business_date_idx on raw.mms_stores (_business_date);

create table if not exists raw.mms_items (
    item_id integer not null,
    item_name text not null,
    category text not null,
    shelf_life_days integer not null,
    unit_price numeric not null,
    unit_cost numeric not null,
    is_active boolean not null,
    _business_date date not null,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamptz not null default now()
);
create index if not exists mms_items__business_date_idx on raw.mms_items (_business_date);

create table if not exists raw.mms_suppliers (
    supplier_id integer not null,
    supplier_name text not null,
    channel text not null,
    email text,
    api_url text,
    allows_auto_order boolean not null,
    _business_date date not null,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamptz not null default now()
);
create index if not exists mms_suppliers__business_date_idx on raw.mms_suppliers (_business_date);

create table if not exists raw.mms_item_suppliers (
    item_id integer not null,
    supplier_id integer not null,
    pack_size integer not null,
    moq integer not null,
    min_order_value numeric not null,
    lead_time_days integer not null,
    order_weekdays text not null,
    cutoff_time text not null,
    max_order_qty integer,
    service_level numeric not null,
    _business_date date not null,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamptz not null default now()
);
create index if not exists mms_item_suppliers__business_date_idx on raw.mms_item_suppliers (_business_date);

create table if not exists raw.mms_purchase_orders (
    po_id text not null,
    line_no integer not null,
    store_id integer not null,
    supplier_id integer not null,
    item_id integer not null,
    order_date date not null,
    due_date date not null,
    quantity numeric not null,
    status text not null,
    _business_date date not null,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamptz not null default now()
);
create index if not exists mms_purchase_orders__business_date_idx on raw.mms_purchase_orders (_business_date);
create index if not exists mms_purchase_orders__key_idx on raw.mms_purchase_orders (po_id, line_no);

create table if not exists raw.mms_goods_receipts (
    receipt_no text not null,
    po_id text not null,
    line_no integer not null,
    store_id integer not null,
    item_id integer not null,
    received_date date not null,
    quantity numeric not null,
    _business_date date not null,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamptz not null default now()
);
create index if not exists mms_goods_receipts__business_date_idx on raw.mms_goods_receipts (_business_date);
create index if not exists mms_goods_receipts__key_idx on raw.mms_goods_receipts (receipt_no);

create table if not exists raw.mms_promotions (
    promotion_id text not null,
    store_id integer not null,
    item_id integer not null,
    start_date date not null,
    end_date date not null,
    promo_type text not null,
    _business_date date not null,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamptz not null default now()
);
create index if not exists mms_promotions__business_date_idx on raw.mms_promotions (_business_date);
create index if not exists mms_promotions__key_idx on raw.mms_promotions (promotion_id);

create table if not exists raw.mms_calendar (
    calendar_date date not null,
    region text not null,
    weekday text,
    is_public_holiday boolean not null,
    is_school_holiday boolean not null,
    _business_date date not null,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamptz not null default now()
);
create index if not exists mms_calendar__business_date_idx on raw.mms_calendar (_business_date);

create table if not exists raw.mms_weather (
    store_id integer not null,
    weather_date date not null,
    rain_mm numeric not null,
    temperature_c numeric not null,
    is_forecast boolean not null,
    _business_date date not null,
    _source_file text,
    _source_line integer,
    _batch_id uuid,
    _loaded_at timestamptz not null default now()
);
create index if not exists mms_weather__business_date_idx on raw.mms_weather (_business_date);

create table if not exists raw.quarantine (
    batch_id uuid not null,
    business_date date not null,
    connector text not null,
    entity text,
    source_file text,
    line_no integer,
    field text,
    reason text not null,
    raw_record jsonb,
    quarantined_at timestamptz not null default now()
);
create index if not exists quarantine__day_idx on raw.quarantine (business_date, entity);
create table if not exists raw.load_batches (
    batch_id uuid primary key,
    business_date date not null,
    connector text not null,
    entity text not null,
    source_file text,
    rows_in_file integer not null,
    rows_loaded integer not null,
    rows_quarantined integer not null,
    loaded_at timestamptz not null default now(),
    constraint load_batches_rows_balance check (rows_loaded + rows_quarantined = rows_in_file)
);
create index if not exists load_batches__day_idx on raw.load_batches (business_date, entity);
-- raw.pos_receipts: sales receipts pushed by the tills (intraday), one row per store and receipt id (a
-- receipt id is only unique within its store).
CREATE TABLE IF NOT EXISTS raw.pos_receipts (
    receipt_id text NOT NULL,
    store_id text NOT NULL,
    terminal text NOT NULL,
    sold_at timestamptz NOT NULL,
    business_date date NOT NULL,
    total numeric(14, 2) NOT NULL,
    lines jsonb NOT NULL,
    payload_hash text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pos_receipts_store_receipt_pk PRIMARY KEY (store_id, receipt_id)
);
-- a database from before receipt ids were scoped per store: widen its key (every existing row stays unique)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'pos_receipts_store_receipt_pk'
                   AND conrelid = 'raw.pos_receipts'::regclass) THEN
        ALTER TABLE raw.pos_receipts DROP CONSTRAINT IF EXISTS pos_receipts_pkey;
        ALTER TABLE raw.pos_receipts ADD CONSTRAINT pos_receipts_store_receipt_pk PRIMARY KEY (store_id, receipt_id);
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS pos_receipts__store_day_idx ON raw.pos_receipts (store_id, business_date);
