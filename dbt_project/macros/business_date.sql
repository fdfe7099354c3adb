{#- The business date D as a SQL date expression (var `business_date`, else current_date). -#}
{% macro business_date() -%}
    {%- set d = var('business_date', none) -%}
    {%- if d is none or d == '' -%}
        current_date
    {%- else -%}
        cast('{{ d }}' as date)
    {%- endif -%}
{%- endmacro %}

{#- Lower bound of the incremental window: D - lookback on incremental runs; all history otherwise. -#}
{% macro incremental_window_start() -%}
    {%- if is_incremental() -%}
        ({{ business_date() }} - {{ var('lookback_days', 35) | int }})
    {%- else -%}
        cast('1900-01-01' as date)
    {%- endif -%}
{%- endmacro %}

{#- Latest row per key in a raw table (masters: latest snapshot; transactions: dedupe reloads). -#}
{% macro latest_per_key(relation, key_columns, order_by='_business_date desc, _loaded_at desc, _source_line desc') -%}
    select distinct on ({{ key_columns | join(', ') }}) *
    from {{ relation }}
    order by {{ key_columns | join(', ') }}, {{ order_by }}
{%- endmacro %}
