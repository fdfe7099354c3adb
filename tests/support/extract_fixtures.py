"""Hand-written minimal export days following docs/file-contract.md (reusable by other tests).

from support.extract_fixtures import write_export_day, export_day, raw_schema  # noqa: F401
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest


def _day_files(d: date) -> dict[str, str]:
    D = d.isoformat()
    nxt = (d + timedelta(days=1)).isoformat()
    return {
        "pos/sales_lines.csv": (
            "receipt_id,store_id,item_id,sold_at,quantity,unit_price,amount,weekday\n"
            f"R{D}-1,1,100,{D}T09:15:00+02:00,2,1.49,2.98,Mon\n"
            f"R{D}-2,1,101,{D}T10:30:00+02:00,1,0.99,0.99,Mon\n"
            f"R{D}-3,2,100,{D}T17:45:10+02:00,3,1.49,4.47,\n"
        ),
        "pos/stock_levels.csv": (
            "store_id,item_id,snapshot_at,on_hand_qty\n"
            f"1,100,{D}T20:00:00+02:00,12\n"
            f"1,101,{D}T20:00:00+02:00,-1\n"
            f"2,100,{D}T20:00:00+02:00,7.5\n"
        ),
        "pos/waste_lines.csv": (f"store_id,item_id,waste_date,quantity,reason\n1,100,{D},1,expired\n"),
        "mms/stores.csv": (
            "store_id,store_name,city,region,opened_date,is_active\n"
            "1,Markt Nord,Hamburg,HH,2015-03-01,true\n"
            '2,"Markt Süd, Altstadt",München,BY,2017-09-15,true\n'
        ),
        "mms/items.csv": (
            "item_id,item_name,category,shelf_life_days,unit_price,unit_cost,is_active\n"
            "100,Milk 1L,dairy,7,1.49,0.95,true\n"
            "101,Bread,bakery,2,0.99,0.40,true\n"
        ),
        "mms/suppliers.csv": (
            "supplier_id,supplier_name,channel,email,api_url,allows_auto_order\n"
            "10,Dairy Co,email,orders@dairy.example,,true\n"
            "11,Bakery AG,api,,https://bakery.example/api,false\n"
        ),
        "mms/item_suppliers.csv": (
            "item_id,supplier_id,pack_size,moq,min_order_value,lead_time_days,order_weekdays,cutoff_time,max_order_qty,service_level\n"
            "100,10,6,12,50,2,1|3|5,14:00,240,0.95\n"
            "101,11,10,0,0,1,1|2|3|4|5|6,18:30,,0.9\n"
        ),
        "mms/purchase_orders.csv": (
            "po_id,line_no,store_id,supplier_id,item_id,order_date,due_date,quantity,status\n"
            f"PO-{D}-1,1,1,10,100,{D},{nxt},24,open\n"
            f"PO-{D}-1,2,1,10,101,{D},{nxt},10,open\n"
        ),
        "mms/goods_receipts.csv": (
            f"receipt_no,po_id,line_no,store_id,item_id,received_date,quantity\nGR-{D}-1,PO-OLD-1,1,1,100,{D},24\n"
        ),
        "mms/promotions.csv": (
            f"promotion_id,store_id,item_id,start_date,end_date,promo_type\nPR-1,1,100,{D},{nxt},price_cut\n"
        ),
        "mms/calendar.csv": (
            "calendar_date,region,weekday,is_public_holiday,is_school_holiday\n"
            f"{D},BY,Mon,false,false\n"
            f"{D},HH,Mon,false,true\n"
            f"{nxt},BY,Tue,true,false\n"
            f"{nxt},HH,Tue,false,true\n"
        ),
        "mms/weather.csv": (
            "store_id,weather_date,rain_mm,temperature_c,is_forecast\n"
            f"1,{D},0.0,14.5,false\n"
            f"1,{nxt},2.5,12.1,true\n"
            f"2,{D},0,17,false\n"
            f"2,{nxt},0.4,-1.5,true\n"
        ),
    }


def write_export_day(
    root: Path | str,
    business_date: date | str = date(2019, 4, 29),
    overrides: dict[str, str | bytes | None] | None = None,
) -> Path:
    """Write a valid export day under ``root/<D>/``. ``overrides`` maps ``system/entity.csv`` to
    replacement content (str/bytes), or None to omit that file. Returns the day folder."""
    d = business_date if isinstance(business_date, date) else date.fromisoformat(business_date)
    files: dict[str, str | bytes | None] = dict(_day_files(d))
    files.update(overrides or {})
    day = Path(root) / d.isoformat()
    for rel, content in files.items():
        if content is None:
            continue
        path = day / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return day


def data_lines(path: Path) -> int:
    """Data records of a fixture file (non-blank lines minus header; fixtures have no embedded newlines)."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return max(0, len(lines) - 1)


@pytest.fixture
def export_day(tmp_path: Path) -> Path:
    """An exports root containing one valid day, 2019-04-29."""
    root = tmp_path / "exports"
    write_export_day(root, date(2019, 4, 29))
    return root


@pytest.fixture
def raw_schema() -> Iterator[str]:
    """A throw-away raw schema name (dropped afterwards) so tests never touch the real ``raw``."""
    from replenish.database import engine

    name = f"raw_t{uuid.uuid4().hex[:10]}"
    yield name
    with engine().begin() as conn:
        conn.exec_driver_sql(f"drop schema if exists {name} cascade")
