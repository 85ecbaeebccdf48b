-- Candidate search that stays fast as the pool grows (issue 16): the indexes the extraction query
-- of services/campaign/repository/candidates.py reads (see docs/campaign.md, "Candidate
-- extraction"), with the GIN index on skills from 0001.

-- The rank after the number of matched skills, holding every column a search filters on: a
-- search walks it in order, index-only, and stops after its `limit` matches instead of reading
-- and sorting every match.
CREATE INDEX candidates_rank ON campaign.candidates (years_experience DESC NULLS LAST, candidate_id)
    INCLUDE (skills, city, seniority, email);

-- A city's (and seniority's) candidates, index-only, for the searches the walk above finds too
-- few for (a small city, juniors, who rank last). It replaces 0001's (lower(city), seniority).
CREATE INDEX candidates_city_rank ON campaign.candidates
    (lower(city), seniority, years_experience DESC NULLS LAST, candidate_id)
    INCLUDE (city, skills, email);
DROP INDEX campaign.candidates_city_seniority;

-- True when a skill is listed twice. The rank counts a repeated skill twice, which the
-- query's strata ("has at least j of the skills") cannot see, so it fetches these few
-- candidates apart. Imports and the demo data never repeat a skill: the index is all but all
-- false, and ANALYZE's statistics on it tell the planner so (the query says IS TRUE to use them).
CREATE FUNCTION campaign.skills_repeat(skills text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT count(*) <> count(DISTINCT s) FROM unnest(skills) AS u(s));

CREATE INDEX candidates_skills_repeat ON campaign.candidates (campaign.skills_repeat(skills));

-- The planner's statistics on the new expression.
ANALYZE campaign.candidates;
