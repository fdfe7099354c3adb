{#- Rows where `expression` is not true fail the test (optional `where` filter via config). -#}
{% test expression_is_true(model, expression, column_name=none) %}
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{% endtest %}
