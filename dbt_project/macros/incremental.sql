
{#- Rows of `relation` whose `column` lies in [start, end], with literal bounds so the filter reaches the date
indexes of the staging tables under the intermediate views. -#}
{% macro rows_between(relation, column, start, end) -%}
    select * from {{ relation }} where {{ column }} between {{ start }} and {{ end }}
{%- endmacro %}
