{#-
Data tests of a nightly (incremental) build check what that build can have changed: the rows of the large
history relations listed in var `test_window_columns` from D - lookback_days on (var `test_window_days` may
give a relation its own number of days). A full refresh
(`--full-refresh`, which the pipeline runs on an empty warehouse) tests every row. Overrides dbt's
get_where_subquery, which wraps the model of every data test; a test's own `where` config still applies.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set filters = [] -%}
    {%- set where = config.get('where') -%}
    {%- if where -%}
        {%- do filters.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set window_column = var('test_window_columns', {}).get(relation.identifier) -%}
    {%- if window_column and not flags.FULL_REFRESH -%}
        {%- set days = var('test_window_days', {}).get(relation.identifier, var('lookback_days', 35)) -%}
        {%- do filters.append(window_column ~ ' >= ' ~ business_date() ~ ' - ' ~ (days | int)) -%}
    {%- endif -%}
    {%- if filters -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ filters | join(' and ') }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
