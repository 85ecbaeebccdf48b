-- Candidate search by country (`Slots.country`) as fast as by city: 0007's rank indexes, with the
-- country among the columns they hold, and a country's own rank index (see _ranked_query in
-- services/campaign/repository/candidates.py).

-- The rank, as in 0007, holding the country too: a walk that filters on it stays index-only.
DROP INDEX campaign.candidates_rank;
CREATE INDEX candidates_rank ON campaign.candidates (years_experience DESC NULLS LAST, candidate_id)
    INCLUDE (skills, city, seniority, email, country);

-- A city's (and seniority's) candidates, as in 0007, holding the country too ("Madrid, ES").
DROP INDEX campaign.candidates_city_rank;
CREATE INDEX candidates_city_rank ON campaign.candidates
    (lower(city), seniority, years_experience DESC NULLS LAST, candidate_id)
    INCLUDE (city, skills, email, country);

-- A country's (and seniority's) candidates, index-only, for the searches the walk finds too few
-- for (a small country, a rare skill, juniors), as `candidates_city_rank` does for a city.
CREATE INDEX candidates_country_rank ON campaign.candidates
    (country, seniority, years_experience DESC NULLS LAST, candidate_id)
    INCLUDE (city, skills, email);

-- A city lies in one country: without these statistics the planner, taking "Madrid" and "ES" for
-- independent, expects a handful of Madrid's candidates in Spain, and plans for a handful.
CREATE STATISTICS campaign.candidates_city_country (dependencies, mcv)
    ON lower(city), country FROM campaign.candidates;

-- The planner's statistics on the new indexes and the city and country together.
ANALYZE campaign.candidates;
