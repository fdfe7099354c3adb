{#-
Incremental staging of a raw transaction table, with the same result as a full "latest row per key" over all
of raw (latest_per_key), but touching only what the loads since the last build changed.

A load replaces whole business days of raw (raw.load_batches has one row per day, entity and file, stamped with
the load's time, as are the raw rows). Every staging row keeps the raw row's _loaded_at, so the staging table's
max(loaded_at) says which loads it already holds; the days of newer loads are the changed days. The keys to
recompute are the keys of those days' raw rows plus the keys of staging rows that came from those days (a reload
may have dropped them). The pre-hook collects those keys into a temporary table and deletes them from the staging
table; the model then appends the latest raw row of each such key, found through the raw key index. A key no
longer anywhere in raw stays deleted. Raw rows changed behind the loader's back (SQL, no load batch) need a
full refresh.
-#}

{#- Business days of `entity` loaded after the newest load the current relation holds. -#}
{% macro changed_load_days(entity) -%}
    select b.business_date from {{ var('raw_schema', 'raw') }}.load_batches as b
    where b.entity = '{{ entity }}'
      and b.loaded_at > (select coalesce(max(t.loaded_at), '-infinity'::timestamptz) from {{ this }} as t)
{%- endmacro %}

{#- Names of the temporary tables of changed days and of keys to recompute (one per model; dropped at commit). -#}
{% macro changed_days_table() -%}
    {{ this.identifier }}__changed_days
{%- endmacro %}

{% macro changed_keys_table() -%}
    {{ this.identifier }}__changed_keys
{%- endmacro %}

{#-
Pre-hook: collect the keys to recompute and delete them from the current relation (incremental runs only).
`keys` maps the staging column to the raw column (same type), `day_column` is the staging column holding the raw
row's _business_date.
-#}
{% macro stage_changed_keys(entity, keys, day_column) -%}
    {%- if is_incremental() -%}
        {%- set staging_cols = keys.keys() | list -%}
        {%- set raw_cols = keys.values() | list -%}
        create temporary table {{ changed_days_table() }} on commit drop as {{ changed_load_days(entity) }};
        analyze {{ changed_days_table() }};
        create temporary table {{ changed_keys_table() }} on commit drop as
        select {{ staging_cols | join(', ') }} from {{ this }}
        where {{ day_column }} in (select business_date from {{ changed_days_table() }})
        union
        select
        {%- for c in raw_cols %} {{ c }} as {{ staging_cols[loop.index0] }}{{ ',' if not loop.last }}{% endfor %}
        from {{ var('raw_schema', 'raw') }}.{{ entity }}
        where _business_date in (select business_date from {{ changed_days_table() }});
        analyze {{ changed_keys_table() }};
        delete from {{ this }} as t using {{ changed_keys_table() }} as k
        where {% for c in staging_cols %}t.{{ c }} = k.{{ c }}{{ ' and ' if not loop.last }}{% endfor %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- The model's raw rows: all of raw on a full build, the latest row of each changed key on an incremental one. -#}
{% macro staged_raw(relation, keys, order_by='_business_date desc, _loaded_at desc, _source_line desc') -%}
    {%- set staging_cols = keys.keys() | list -%}
    {%- set raw_cols = keys.values() | list -%}
    select distinct on ({{ raw_cols | join(', ') }}) r.*
    from {{ relation }} as r
    {%- if is_incremental() and '_business_date' in raw_cols %}
    {#- a key holding the load day: the changed keys are exactly the rows of the changed days #}
    where r._business_date in (select business_date from {{ changed_days_table() }})
    {%- elif is_incremental() %}
    where ({{ raw_cols | join(', ') }}) in (select {{ staging_cols | join(', ') }} from {{ changed_keys_table() }})
    {%- endif %}
    order by {{ raw_cols | join(', ') }}, {{ order_by }}
{%- endmacro %}

{#-
Post-hook: create the given btree indexes on the model's relation unless an index on exactly those columns exists
(also on a relation built before the index was declared; names are left to PostgreSQL, so a full refresh, which
keeps the previous relation until commit, never clashes with the old index names).
-#}
{% macro ensure_indexes(index_columns) -%}
    do $$
    begin
    {%- for cols in index_columns %}
        if not exists (
            select 1 from pg_indexes
            where schemaname = '{{ this.schema }}' and tablename = '{{ this.identifier }}'
              and indexdef like '%USING btree ({{ cols | join(", ") }})'
        ) then
            create index on {{ this }} ({{ cols | join(', ') }});
        end if;
    {%- endfor %}
    end $$
{%- endmacro %}

{#- Post-hook: statistics for a relation that was just rebuilt from scratch (a full refresh of millions of rows),
so the planner of the next models, tests and stages sees its size; nightly increments leave it to autovacuum. -#}
{% macro analyze_if_rebuilt() -%}
    {%- if is_incremental() -%} select 1 {%- else -%} analyze {{ this }} {%- endif -%}
{%- endmacro %}
