-- Ordering parameters per store, item and supplier: the supplier terms of the item apply to every
-- store carrying the item (store/item assortment seen in stock or sales).
select
    a.store_id,
    a.item_id,
    s.supplier_id,
    s.pack_size,
    s.moq,
    s.min_order_value,
    s.lead_time_days,
    s.order_weekdays,
    s.cutoff_time,
    s.max_order_qty,
    s.service_level,
    i.shelf_life_days,
    i.unit_price,
    i.unit_cost,
    sup.allows_auto_order,
    sup.channel
from {{ ref('int_store_item_assortment') }} as a
join {{ ref('stg_mms__item_suppliers') }} as s on s.item_id = a.item_id
join {{ ref('stg_mms__items') }} as i on i.item_id = a.item_id
join {{ ref('stg_mms__suppliers') }} as sup on sup.supplier_id = s.supplier_id
join {{ ref('stg_mms__stores') }} as st on st.store_id = a.store_id
