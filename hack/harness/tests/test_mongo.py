"""The harness's MongoDB-wire server answers PyMongo's async client."""

from __future__ import annotations

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError


async def test_insert_find_index_and_unique_violation(mongo_server):
    mongo: AsyncMongoClient = AsyncMongoClient(mongo_server.url, serverSelectionTimeoutMS=5000)
    try:
        users = mongo["harness"]["users"]
        await users.drop()
        await users.create_index("email", unique=True, name="email_unique")
        await users.insert_one({"email": "ada@example.com", "name": "Ada"})
        found = await users.find_one({"email": "ada@example.com"})
        assert found is not None and found["name"] == "Ada"
        indexes = await users.index_information()
        assert indexes["email_unique"]["unique"] is True
        with pytest.raises(DuplicateKeyError):
            await users.insert_one({"email": "ada@example.com", "name": "Impostor"})
        assert await users.count_documents({}) == 1
    finally:
        await mongo.close()
