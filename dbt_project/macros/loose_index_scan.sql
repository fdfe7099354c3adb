{#-
Distinct (store_id, item_id) pairs of a relation with an index leading on (store_id, item_id), found by a loose index
scan (a recursive CTE that jumps from one pair to the next through the index): as many index probes as pairs, not a
read of every row (PostgreSQL does not plan a DISTINCT that way by itself).
-#}
{% macro distinct_store_item_pairs(relation) -%}
    select store_id, item_id from (
        with recursive pairs as (
            (select store_id, item_id from {{ relation }} order by store_id, item_id limit 1)
            union all
            select n.store_id, n.item_id
            from pairs as p
            cross join lateral (
                select s.store_id, s.item_id from {{ relation }} as s
                where (s.store_id, s.item_id) > (p.store_id, p.item_id)
                order by s.store_id, s.item_id
                limit 1
            ) as n
        )
        select store_id, item_id from pairs
    ) as loose_scan
{%- endmacro %}
